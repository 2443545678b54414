from django.contrib import admin

from spatiallab.verification.models import Adjudication, Assignment, QueueItem, VerificationQueue


@admin.register(VerificationQueue)
class VerificationQueueAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "overlap", "quorum", "lease_minutes", "gold_share", "priority", "created_at")
    list_filter = ("status",)
    search_fields = ("name",)
    filter_horizontal = ("annotators",)


@admin.register(QueueItem)
class QueueItemAdmin(admin.ModelAdmin):
    # Counters are the services' to keep (they guard the overlap): read-only here.
    list_display = ("id", "queue", "pair", "is_gold", "status", "taken", "done", "flags")
    list_filter = ("status", "is_gold", "queue")
    readonly_fields = ("queue", "pair", "rank", "taken", "done", "open", "status", "flags", "decided_at")
    raw_id_fields = ("pair",)


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("id", "queue", "item", "annotator", "status", "answer", "seconds", "answered_at")
    list_filter = ("status", "answer", "queue")
    raw_id_fields = ("item", "annotator")

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # verdicts are changed only by their annotator (undo), never edited


@admin.register(Adjudication)
class AdjudicationAdmin(admin.ModelAdmin):
    list_display = ("item", "status", "decided_by", "decided_at")
    raw_id_fields = ("item",)
