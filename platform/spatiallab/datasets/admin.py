"""Dataset versions in the admin are read-only: a version is made by its build job and never edited (the
database refuses changes to a frozen one anyway). Failed or building versions may be deleted."""

from django.contrib import admin

from spatiallab.datasets.models import DatasetEntry, DatasetExport, DatasetVersion, VersionStatus


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DatasetVersion)
class DatasetVersionAdmin(ReadOnlyAdmin):
    list_display = ("name", "status", "entry_count", "content_hash", "parent", "created_at", "frozen_at")
    list_filter = ("status",)
    search_fields = ("name", "content_hash")

    def has_delete_permission(self, request, obj=None) -> bool:
        return obj is not None and obj.status != VersionStatus.FROZEN and not obj.exports.exists()


@admin.register(DatasetEntry)
class DatasetEntryAdmin(ReadOnlyAdmin):
    list_display = ("version", "pair", "split")
    list_filter = ("split",)
    raw_id_fields = ("version", "pair")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DatasetExport)
class DatasetExportAdmin(ReadOnlyAdmin):
    list_display = ("version", "format", "split", "status", "size", "sha256", "created_at")
    list_filter = ("format", "status")
