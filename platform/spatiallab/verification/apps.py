from django.apps import AppConfig


class VerificationConfig(AppConfig):
    name = "spatiallab.verification"
    label = "verification"
    verbose_name = "Verification queues"
