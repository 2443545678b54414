from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "spatiallab.datasets"
    label = "datasets"
    verbose_name = "Dataset versions"

    def ready(self) -> None:
        from spatiallab.datasets.services import jobs_ended_fail_their_work
        from spatiallab.jobs.services import job_ended

        job_ended.connect(jobs_ended_fail_their_work, dispatch_uid="datasets-job-ended")
