from django.conf import settings as django_settings
from django.db import models
from django.utils import timezone

from ml.generation.settings import BACKEND_LABELS


class Backend(models.TextChoices):
    DIFFUSERS = "diffusers", BACKEND_LABELS["diffusers"]
    SCENE_RENDERER = "scene-renderer", BACKEND_LABELS["scene-renderer"]


class Generator(models.Model):
    """A registered image generator: a backend and its settings (ml.generation.settings).

    Settings are frozen once the generator has made a pair, so every pair's generator describes exactly how it
    was made; a changed configuration is registered as a new generator."""

    name = models.CharField(max_length=100, unique=True)
    backend = models.CharField(max_length=30, choices=Backend.choices)
    settings = models.JSONField(default=dict, blank=True)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(django_settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def image_format(self) -> str:
        return self.settings.get("image_format", "png")


class Pair(models.Model):
    """Two images from the same generator, seed and settings: one from the perfect prompt (the candidate
    winner) and one from its perturbed copy (the candidate loser)."""

    generator = models.ForeignKey(Generator, on_delete=models.PROTECT, related_name="pairs")
    prompt = models.ForeignKey("prompts.Prompt", on_delete=models.CASCADE, related_name="pairs")
    perturbed = models.ForeignKey("prompts.PerturbedPrompt", on_delete=models.CASCADE, related_name="pairs")
    seed = models.BigIntegerField()
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    n_edits = models.PositiveSmallIntegerField(help_text="Copied from the perturbed prompt for filtering.")
    # Storage names (Django's storage API: local disk or S3). Names are opaque: they never say which image
    # came from the perfect prompt.
    winner_image = models.CharField(max_length=300)
    loser_image = models.CharField(max_length=300)
    winner_thumb = models.CharField(max_length=300)
    loser_thumb = models.CharField(max_length=300)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    # Provenance: backend, settings, prompt texts, edits, timings, renderer ground truth.
    meta = models.JSONField(default=dict, blank=True)
    # Renderer ground truth where known: the winner follows the perfect prompt and the loser does not.
    ground_truth_ok = models.BooleanField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            # The resume guarantee: a redelivered or repeated generation never stores the same pair twice.
            models.UniqueConstraint(fields=["generator", "perturbed", "seed"], name="pair_unique_generation"),
        ]
        indexes = [
            models.Index(fields=["job", "-id"], name="pair_job_idx"),
            models.Index(fields=["generator", "-id"], name="pair_generator_idx"),
            models.Index(fields=["n_edits", "-id"], name="pair_n_edits_idx"),
            models.Index(fields=["prompt", "-id"], name="pair_prompt_idx"),
        ]

    def __str__(self) -> str:
        return f"pair {self.pk} ({self.generator_id}, seed {self.seed})"


class GenerationFailure(models.Model):
    """A (perturbed prompt, seed) that a generation job could not render, with the error and the prompt."""

    job = models.ForeignKey("jobs.Job", on_delete=models.CASCADE, related_name="+")
    generator = models.ForeignKey(Generator, on_delete=models.CASCADE, related_name="failures")
    perturbed = models.ForeignKey("prompts.PerturbedPrompt", on_delete=models.CASCADE, related_name="+")
    seed = models.BigIntegerField()
    prompt_text = models.TextField()
    perturbed_text = models.TextField()
    error = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["job", "generator", "perturbed", "seed"], name="failure_unique_in_job"),
        ]
        indexes = [models.Index(fields=["job", "-id"], name="failure_job_idx")]

    def __str__(self) -> str:
        return f"failure of job {self.job_id}: perturbed prompt {self.perturbed_id}, seed {self.seed}"
