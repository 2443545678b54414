from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "spatiallab.accounts"
    label = "accounts"
