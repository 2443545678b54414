"""The perturbation rules every installation starts with (plain data: the data migration reads it too)."""

DEFAULT_RULES = [
    # name, kind, params, weight, description
    ("Flip direction", "flip_direction", {}, 3.0, "left<->right, in front of<->behind, above<->below, on<->under"),
    ("Swap objects", "swap_objects", {}, 2.0, "Exchange the two objects of a relation."),
    ("Reverse sequence", "reverse_sequence", {}, 1.0, "Reverse the order of a row of objects."),
    ("Rotate sequence", "rotate_sequence", {"steps": 1}, 1.0, "Rotate a row of objects by one place."),
    ("Move anchor", "move_anchor", {}, 1.0, "Relate an object to another object of the scene."),
]


def ensure_default_rules(rule_model) -> None:
    """Creates the default rules that are missing (by name); never changes existing ones."""
    for name, kind, params, weight, description in DEFAULT_RULES:
        rule_model.objects.get_or_create(
            name=name, defaults={"kind": kind, "params": params, "weight": weight, "description": description}
        )
