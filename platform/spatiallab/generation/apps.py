from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "spatiallab.generation"
    label = "generation"
    verbose_name = "Pair generation"
