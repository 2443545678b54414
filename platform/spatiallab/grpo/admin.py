from django.contrib import admin

from spatiallab.grpo.models import GrpoCheckpoint, GrpoRun


@admin.register(GrpoRun)
class GrpoRunAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "generator", "reward", "status", "created_by", "created_at"]
    list_filter = ["status"]
    raw_id_fields = ["generator", "reward_checkpoint", "train_prompt_set", "eval_prompt_set", "job", "created_by"]


@admin.register(GrpoCheckpoint)
class GrpoCheckpointAdmin(admin.ModelAdmin):
    list_display = ["id", "run", "step", "path", "generator", "created_at"]
    raw_id_fields = ["run", "generator"]
