from django.apps import AppConfig


class PromptsConfig(AppConfig):
    name = "spatiallab.prompts"
    label = "prompts"
