from django.db import migrations

from spatiallab.prompts.defaults import ensure_default_rules


def create_rules(apps, schema_editor):
    ensure_default_rules(apps.get_model("prompts", "PerturbationRule"))


class Migration(migrations.Migration):
    dependencies = [("prompts", "0002_graphs_rules_perturbations")]
    operations = [migrations.RunPython(create_rules, migrations.RunPython.noop)]
