from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "spatiallab.jobs"
    label = "jobs"

    def ready(self) -> None:
        # The web side sends job messages by task name through the Celery app defined in workers/; importing
        # the app object (not the task code, which would pull in ml/) makes it the current app here.
        import workers.app  # noqa: F401
