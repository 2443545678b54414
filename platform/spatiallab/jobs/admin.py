from django.contrib import admin

from spatiallab.jobs.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "kind", "status", "progress_done", "progress_total", "attempts", "created_by", "created_at"]
    list_filter = ["status", "kind", "queue"]
    list_select_related = ["created_by"]
    readonly_fields = ["worker_token", "heartbeat_at", "started_at", "finished_at", "run_started_at"]
