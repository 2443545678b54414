from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "spatiallab.core"
    label = "core"

    def ready(self) -> None:
        from spatiallab.core import checks  # noqa: F401  (registers the deploy checks)
