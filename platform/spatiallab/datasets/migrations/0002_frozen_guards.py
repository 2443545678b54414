"""Installs the triggers that make frozen dataset versions immutable (spatiallab.datasets.guards)."""

from django.db import migrations

from spatiallab.datasets import guards


def forwards(apps, schema_editor):
    guards.install(schema_editor, schema_editor.connection.vendor)


def backwards(apps, schema_editor):
    guards.uninstall(schema_editor, schema_editor.connection.vendor)


class Migration(migrations.Migration):
    dependencies = [("datasets", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
