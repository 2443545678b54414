"""The registry of job kinds: what each one is called, which queue runs it, and how its params are checked.

Every later job type (generation, export, reward training, evaluation, GRPO) adds one entry here and one
handler in workers/handlers; nothing else about jobs changes.
"""

from dataclasses import dataclass

from rest_framework import serializers

from spatiallab.datasets.job_params import BuildDatasetParams, ExportDatasetParams
from spatiallab.generation.job_params import GeneratePairsParams
from spatiallab.grpo.job_params import TrainGrpoParams
from spatiallab.prompts.job_params import PerturbPromptSetParams
from spatiallab.rewards.job_params import EvaluateRewardParams, ScoreImagesParams, ScorePairsParams, TrainRewardParams
from spatiallab.verification.job_params import BuildQueueParams


class DemoPrimesParams(serializers.Serializer):
    limit = serializers.IntegerField(
        min_value=10, max_value=200_000_000, default=2_000_000, help_text="Count the primes below this number."
    )
    chunks = serializers.IntegerField(
        min_value=1, max_value=10_000, default=20, help_text="Steps the range is split into (one per progress tick)."
    )
    step_delay = serializers.FloatField(
        min_value=0.0, max_value=10.0, default=0.0, help_text="Seconds to pause after each step (for demos)."
    )

    def validate(self, attrs):
        if attrs["chunks"] > attrs["limit"]:
            raise serializers.ValidationError({"chunks": "must not exceed limit."})
        return attrs


@dataclass(frozen=True)
class JobKind:
    name: str
    label: str
    queue: str  # "cpu" or "gpu"
    params: type[serializers.Serializer]
    unit: str = "steps"  # what progress counts; rates show per minute for slow units
    per_minute: bool = False


JOB_KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in [
        JobKind("demo_primes", "Demo: count primes in steps", "cpu", DemoPrimesParams),
        JobKind("perturb_prompt_set", "Perturb a prompt set", "cpu", PerturbPromptSetParams, unit="prompts"),
        JobKind("generate_pairs", "Generate image pairs", "gpu", GeneratePairsParams, unit="pairs", per_minute=True),
        JobKind("build_queue", "Build a large verification queue", "cpu", BuildQueueParams, unit="items"),
        JobKind("build_dataset", "Build a dataset version", "cpu", BuildDatasetParams, unit="pairs"),
        JobKind("export_dataset", "Export a dataset version", "cpu", ExportDatasetParams, unit="entries"),
        JobKind("train_reward", "Train a reward model", "gpu", TrainRewardParams, unit="steps", per_minute=True),
        JobKind("evaluate_reward", "Evaluate a reward checkpoint", "gpu", EvaluateRewardParams, unit="pairs"),
        JobKind("score_pairs", "Score pairs with a reward checkpoint", "gpu", ScorePairsParams, unit="pairs"),
        JobKind("score_images", "Score images with a reward checkpoint", "gpu", ScoreImagesParams, unit="images"),
        JobKind("train_grpo", "Fine-tune a generator with Flow-GRPO", "gpu", TrainGrpoParams, per_minute=True),
    ]
}

# The Celery task that runs a job of each queue (routed by task name in settings.CELERY_TASK_ROUTES).
QUEUE_TASKS = {"cpu": "workers.run_cpu_job", "gpu": "workers.run_gpu_job"}
