from django.conf import settings
from django.db import models
from django.utils import timezone


class PromptSet(models.Model):
    """A named collection of spatial prompts: the pipeline's input. Each prompt stores its parsed scene graph."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    # Where the prompts came from: "upload: prompts.jsonl", "generator", "demo", "api".
    source = models.CharField(max_length=200, blank=True)
    # Generator settings or upload facts (duplicates skipped, lines read), kept for provenance.
    source_info = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class Prompt(models.Model):
    prompt_set = models.ForeignKey(PromptSet, on_delete=models.CASCADE, related_name="prompts")
    position = models.PositiveIntegerField()
    text = models.TextField()
    # Lower-cased, whitespace-collapsed: two prompts that differ only in spacing or case are duplicates.
    normalized_text = models.TextField()
    word_count = models.PositiveIntegerField(default=0)
    category = models.CharField(max_length=40, blank=True)
    source_line = models.PositiveIntegerField(null=True, blank=True, help_text="Line of the uploaded file.")
    # The parsed scene graph (ml.spatial.graph.SceneGraph.to_dict()) and numbers derived from it.
    graph = models.JSONField(default=dict, blank=True)
    object_count = models.PositiveSmallIntegerField(default=0)
    relation_count = models.PositiveSmallIntegerField(default=0)
    unparsed_count = models.PositiveSmallIntegerField(default=0)
    relation_kinds = models.JSONField(default=dict, blank=True, help_text="Relation kind -> count.")

    class Meta:
        ordering = ["prompt_set", "position"]
        constraints = [
            models.UniqueConstraint(fields=["prompt_set", "normalized_text"], name="prompt_unique_in_set"),
            models.UniqueConstraint(fields=["prompt_set", "position"], name="prompt_position_unique_in_set"),
        ]
        indexes = [models.Index(fields=["prompt_set", "relation_count"], name="prompt_set_relations_idx")]

    def __str__(self) -> str:
        return self.text[:60]


class RuleKind(models.TextChoices):
    FLIP_DIRECTION = "flip_direction", "Flip a direction (left/right, front/behind, above/below, on/under)"
    SWAP_OBJECTS = "swap_objects", "Swap the two objects of a relation"
    REVERSE_SEQUENCE = "reverse_sequence", "Reverse a sequence"
    ROTATE_SEQUENCE = "rotate_sequence", "Rotate a sequence"
    MOVE_ANCHOR = "move_anchor", "Move an object to another anchor"


class PerturbationRule(models.Model):
    """A rule researchers configure and enable: a kind, its parameters, and a weight for random choice."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=30, choices=RuleKind.choices)
    params = models.JSONField(default=dict, blank=True)
    weight = models.FloatField(default=1.0)
    enabled = models.BooleanField(default=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=models.Q(weight__gt=0), name="rule_weight_positive")]

    def __str__(self) -> str:
        return self.name


class PerturbedPrompt(models.Model):
    """A prompt with 1-3 of its relations changed. The perfect prompt's image is the candidate winner."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="perturbations")
    text = models.TextField()
    normalized_text = models.TextField()
    n_edits = models.PositiveSmallIntegerField()
    seed = models.BigIntegerField()
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["prompt_id", "id"]
        constraints = [
            # Re-running a perturbation job (same seed, or a redelivered message) never stores a twin.
            models.UniqueConstraint(fields=["prompt", "normalized_text"], name="perturbed_unique_per_prompt"),
        ]
        indexes = [models.Index(fields=["prompt", "n_edits"], name="perturbed_prompt_edits_idx")]

    def __str__(self) -> str:
        return self.text[:60]


class PerturbationEdit(models.Model):
    """One changed relation of a perturbed prompt: before and after, with its spans in both texts."""

    perturbed = models.ForeignKey(PerturbedPrompt, on_delete=models.CASCADE, related_name="edits")
    position = models.PositiveSmallIntegerField()
    rule = models.ForeignKey(PerturbationRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    rule_kind = models.CharField(max_length=30, choices=RuleKind.choices)
    relation_kind = models.CharField(max_length=20, help_text="Kind of the relation before the edit.")
    relation_before = models.JSONField()
    relation_after = models.JSONField()
    span_before = models.JSONField(help_text="[start, end) in the original text.")
    span_after = models.JSONField(help_text="[start, end) in the perturbed text.")

    class Meta:
        ordering = ["perturbed_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["perturbed", "position"], name="edit_position_unique"),
        ]
        indexes = [
            models.Index(fields=["relation_kind", "perturbed"], name="edit_relation_kind_idx"),
            models.Index(fields=["rule", "perturbed"], name="edit_rule_idx"),
            models.Index(fields=["rule_kind", "perturbed"], name="edit_rule_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.rule_kind}: {self.relation_kind}"
