from django.contrib import admin

from spatiallab.rewards.models import RewardCheckpoint, RewardRun


@admin.register(RewardRun)
class RewardRunAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "dataset_version", "status", "created_by", "created_at"]
    list_filter = ["status"]
    raw_id_fields = ["dataset_version", "job", "created_by"]


@admin.register(RewardCheckpoint)
class RewardCheckpointAdmin(admin.ModelAdmin):
    list_display = ["id", "run", "step", "path", "created_at"]
    raw_id_fields = ["run"]
