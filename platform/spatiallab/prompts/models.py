from django.conf import settings
from django.db import models
from django.utils import timezone


class PromptSet(models.Model):
    """A named collection of spatial prompts (the pipeline's input; parsing and perturbation come later)."""

    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
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

    class Meta:
        ordering = ["prompt_set", "position"]
        constraints = [
            models.UniqueConstraint(fields=["prompt_set", "normalized_text"], name="prompt_unique_in_set"),
            models.UniqueConstraint(fields=["prompt_set", "position"], name="prompt_position_unique_in_set"),
        ]

    def __str__(self) -> str:
        return self.text[:60]
