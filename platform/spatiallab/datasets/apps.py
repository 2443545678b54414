from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "spatiallab.datasets"
    label = "datasets"
    verbose_name = "Dataset versions"
