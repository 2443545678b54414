from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security, deploy=True)
def secret_key_from_environment(app_configs, **kwargs):
    """A production start must bring its own SECRET_KEY; the built-in one is for the embedded default only."""
    if settings.SECRET_KEY_FROM_ENV:
        return []
    return [
        Error(
            "SECRET_KEY is not set in the environment; the built-in development key is not for deployment.",
            hint="Set SECRET_KEY to a long random value: "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'",
            id="spatiallab.E001",
        )
    ]

