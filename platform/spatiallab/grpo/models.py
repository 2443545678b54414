"""Flow-GRPO runs: which generator was fine-tuned against which reward on which prompts (with the full
configuration and the code version), its live metric curves, its LoRA checkpoints and the evaluation gallery
(the same prompts and seeds at step 0, the base model, and at every evaluation)."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from spatiallab.jobs.models import JobStatus, RunMetric


class GrpoRun(models.Model):
    name = models.CharField(max_length=200)
    generator = models.ForeignKey("generation.Generator", on_delete=models.PROTECT, related_name="grpo_runs",
                                  help_text="The base generator (diffusers backend).")
    base_model = models.CharField(max_length=1000, help_text="The generator's pipeline folder, resolved.")
    reward = models.CharField(max_length=100, help_text="Registered reward name (spatialscore or programmatic).")
    reward_checkpoint = models.ForeignKey("rewards.RewardCheckpoint", null=True, blank=True,
                                          on_delete=models.SET_NULL, related_name="grpo_runs")
    reward_model = models.CharField(max_length=1000, blank=True,
                                    help_text="The reward checkpoint's folder when the run was created.")
    train_prompt_set = models.ForeignKey("prompts.PromptSet", on_delete=models.PROTECT, related_name="+")
    eval_prompt_set = models.ForeignKey("prompts.PromptSet", on_delete=models.PROTECT, related_name="+")
    config = models.JSONField(default=dict, help_text="GRPOConfig settings (the platform-managed ones left out).")
    code_version = models.CharField(max_length=100, blank=True, help_text="Git commit, else the package version.")
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.QUEUED,
                              help_text="Mirrors the training job.")
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    output_dir = models.CharField(max_length=1000, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="grpo_runs")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"


class GrpoMetric(RunMetric):
    run = models.ForeignKey(GrpoRun, on_delete=models.CASCADE, related_name="metrics")

    class Meta(RunMetric.Meta):
        constraints = [models.UniqueConstraint(fields=["run", "step", "kind"], name="grpo_metric_unique")]


class GrpoCheckpoint(models.Model):
    run = models.ForeignKey(GrpoRun, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.PositiveIntegerField()
    path = models.CharField(max_length=1000, help_text="The checkpoint folder (its LoRA weights load with "
                                                       "load_lora_weights).")
    metrics = models.JSONField(default=dict, blank=True, help_text="The last train and eval metrics at this step.")
    # Registering copies the LoRA weights beside the run (pruning the checkpoint never breaks the generator).
    generator = models.ForeignKey("generation.Generator", null=True, blank=True, on_delete=models.SET_NULL,
                                  related_name="+", help_text="The generator registered from this checkpoint.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="grpo_checkpoint_run_step_unique")]

    def __str__(self) -> str:
        return f"GRPO run {self.run_id} step {self.step}"


class GrpoSample(models.Model):
    """One evaluation image: the same (prompt, seed) at every evaluation; step 0 is the base model."""

    run = models.ForeignKey(GrpoRun, on_delete=models.CASCADE, related_name="samples")
    step = models.PositiveIntegerField()
    prompt_index = models.PositiveIntegerField()
    prompt = models.TextField()
    seed = models.BigIntegerField()
    image = models.CharField(max_length=300, help_text="Storage name.")
    reward = models.FloatField(null=True)

    class Meta:
        ordering = ["step", "prompt_index", "seed"]
        constraints = [models.UniqueConstraint(fields=["run", "step", "prompt_index", "seed"],
                                               name="grpo_sample_unique")]

    def __str__(self) -> str:
        return f"run {self.run_id} step {self.step} prompt {self.prompt_index} seed {self.seed}"
