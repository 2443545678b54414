from django.apps import AppConfig


class GrpoConfig(AppConfig):
    name = "spatiallab.grpo"
    label = "grpo"
    verbose_name = "Flow-GRPO runs"

    def ready(self) -> None:
        from spatiallab.grpo.services import jobs_ended_mark_runs
        from spatiallab.jobs.services import job_ended

        job_ended.connect(jobs_ended_mark_runs, dispatch_uid="grpo-job-ended")
