from django.db import migrations

DEFAULT_RULES = [
    ("Flip direction", "flip_direction", {}, 3.0, "left<->right, in front of<->behind, above<->below, on<->under"),
    ("Swap objects", "swap_objects", {}, 2.0, "Exchange the two objects of a relation."),
    ("Reverse sequence", "reverse_sequence", {}, 1.0, "Reverse the order of a row of objects."),
    ("Rotate sequence", "rotate_sequence", {"steps": 1}, 1.0, "Rotate a row of objects by one place."),
    ("Move anchor", "move_anchor", {}, 1.0, "Relate an object to another object of the scene."),
]


def create_rules(apps, schema_editor):
    Rule = apps.get_model("prompts", "PerturbationRule")
    for name, kind, params, weight, description in DEFAULT_RULES:
        Rule.objects.get_or_create(
            name=name, defaults={"kind": kind, "params": params, "weight": weight, "description": description}
        )


class Migration(migrations.Migration):
    dependencies = [("prompts", "0002_graphs_rules_perturbations")]
    operations = [migrations.RunPython(create_rules, migrations.RunPython.noop)]
