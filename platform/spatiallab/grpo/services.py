"""GRPO runs: creating one (validated, then its training job), recording what the job reports (metric rows,
checkpoint rows, evaluation samples, the status that mirrors the job), and registering a checkpoint as a new
generator so its samples can go through pair generation and verification again."""

from __future__ import annotations

import copy
import os
import shutil
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from spatiallab.generation.models import Backend, Generator
from spatiallab.generation.services import generator_create
from spatiallab.grpo.defaults import CHOICES, DEFAULTS, MANAGED, PROGRAMMATIC_REWARDS, SPATIALSCORE
from spatiallab.grpo.models import GrpoCheckpoint, GrpoMetric, GrpoRun, GrpoSample
from spatiallab.jobs import runs
from spatiallab.jobs.services import job_create
from spatiallab.prompts.models import PromptSet
from spatiallab.rewards.models import RewardCheckpoint
from spatiallab.rewards.services import code_version

LORA_NAME = "pytorch_lora_weights.safetensors"  # what ml.grpo.train writes into each checkpoint folder

# Accepted ranges of the numeric settings: (min, max), inclusive. GRPOConfig's own rules across fields are
# checked below, so the worker is never handed a config it refuses.
RANGES: dict[str, tuple[float, float]] = {
    "reward_batch_size": (1, 1024), "group_size": (1, 1024), "top_k": (0, 512), "prompts_per_step": (1, 4096),
    "sample_steps": (1, 1000), "eval_steps": (1, 1000), "noise_level": (1e-6, 10.0), "timestep_fraction": (1e-6, 1.0),
    "height": (16, 4096), "width": (16, 4096), "guidance": (0.0, 100.0), "cfg_scale": (1.0, 100.0),
    "max_sequence_length": (1, 4096), "sample_batch_size": (1, 1024), "lr": (0.0, 1.0), "weight_decay": (0.0, 1.0),
    "adam_beta1": (0.0, 0.999999), "adam_beta2": (0.0, 0.999999), "max_grad_norm": (0.0, 1e6),
    "clip_range": (0.0, 10.0), "beta": (0.0, 100.0), "adv_clip": (0.0, 1e6), "std_eps": (0.0, 1.0),
    "updates_per_step": (1, 1024), "train_batch_size": (1, 1024), "ema_decay": (0.0, 0.999999),
    "lora_rank": (1, 1024), "lora_alpha": (0.0, 10_000.0), "max_steps": (1, 10_000_000),
    "eval_every": (0, 10_000_000), "eval_seeds": (1, 64), "eval_seed_base": (0, 2**62),
    "save_every": (0, 10_000_000), "keep_last": (1, 1000), "log_every": (1, 10_000_000), "seed": (0, 2**31 - 1),
}


def config_defaults() -> dict[str, Any]:
    """The paper's defaults, as the launch form and the API show them (the platform-managed fields left out)."""
    return copy.deepcopy(DEFAULTS)


def _merged(given: dict | None) -> tuple[dict, dict]:
    """The settings over the defaults; errors keyed by "config.<field>"."""
    values, errors = runs.settings_merged(config_defaults(), given, prefix="config", managed=MANAGED, ranges=RANGES,
                                          choices=CHOICES)
    if not errors:
        if values["top_k"] > values["group_size"]:
            errors["config.top_k"] = ["Must not exceed config.group_size."]
        for key in ("height", "width"):
            if values[key] % 16:
                errors[f"config.{key}"] = ["Must be a multiple of 16."]
    return values, errors


def pipeline_folder(generator: Generator) -> Path:
    """The generator's `model` setting as a folder: absolute, or relative to the models volume."""
    model = str(generator.settings.get("model") or "")
    folder = Path(model).expanduser()
    if not folder.is_absolute():
        folder = Path(settings.MODELS_DIR) / folder
    return folder


def _generator_errors(generator: Generator) -> list[str]:
    if generator.backend != Backend.DIFFUSERS:
        return [f"{generator.name!r} is a {generator.backend} generator; GRPO fine-tunes a diffusers pipeline."]
    if generator.settings.get("lora"):
        return [f"{generator.name!r} already carries LoRA weights; GRPO starts from a plain pipeline."]
    folder = pipeline_folder(generator)
    if not generator.settings.get("model") or not (folder / "model_index.json").is_file():
        return [f"{generator.name!r}: no diffusers pipeline folder (model_index.json) at {str(folder)!r}."]
    return []


@transaction.atomic
def run_create(*, name: str, generator: Generator, train_prompt_set: PromptSet, eval_prompt_set: PromptSet,
               reward_checkpoint: RewardCheckpoint | None = None, reward: str = "", config: dict | None = None,
               created_by=None) -> GrpoRun:
    """Validates everything first (a ValidationError names the field; nothing is stored), then stores the run
    and its training job (enqueued when the transaction commits). The reward is a reward-model checkpoint
    (SpatialScore) or a programmatic reward's name, not both."""
    errors: dict[str, list[str]] = {}
    if not (name or "").strip():
        errors["name"] = ["Give the run a name."]
    if generator_errors := _generator_errors(generator):
        errors["generator"] = generator_errors
    reward = (reward or "").strip()
    if reward_checkpoint is not None and reward:
        errors["reward"] = ["Give a reward checkpoint or a programmatic reward, not both."]
    elif reward_checkpoint is not None:
        if not Path(reward_checkpoint.path).is_dir():
            errors["reward_checkpoint"] = [f"The checkpoint's folder {reward_checkpoint.path!r} is gone."]
        reward = SPATIALSCORE
    elif not reward:
        errors["reward"] = ["Choose a reward checkpoint or a programmatic reward."]
    elif reward not in PROGRAMMATIC_REWARDS:
        errors["reward"] = [f"Unknown reward {reward!r}; programmatic rewards: {', '.join(PROGRAMMATIC_REWARDS)} "
                            f"(or choose a reward checkpoint)."]
    for field, prompt_set in (("train_prompt_set", train_prompt_set), ("eval_prompt_set", eval_prompt_set)):
        if not prompt_set.prompts.exists():
            errors[field] = [f"Prompt set {prompt_set.name!r} has no prompts."]
    values, config_errors = _merged(config)
    errors |= config_errors
    if errors:
        raise ValidationError(errors)
    run = GrpoRun.objects.create(
        name=name.strip(), generator=generator, base_model=str(pipeline_folder(generator)), reward=reward,
        reward_checkpoint=reward_checkpoint, reward_model=reward_checkpoint.path if reward_checkpoint else "",
        train_prompt_set=train_prompt_set, eval_prompt_set=eval_prompt_set, config=values,
        code_version=code_version(), created_by=created_by)
    run.output_dir = str(Path(settings.MEDIA_ROOT) / "grpo-runs" / str(run.pk))
    run.job = job_create(kind="train_grpo", params={"run": run.pk}, created_by=created_by)
    run.save(update_fields=["output_dir", "job"])
    return run


run_cancel = runs.run_cancel
run_resume = partial(runs.run_resume, kind="train_grpo")
run_set_status = partial(runs.run_set_status, GrpoRun)
jobs_ended_mark_runs = runs.status_mirror(GrpoRun)
metric_record = partial(runs.metric_record, GrpoMetric)
# A checkpoint registered as a generator keeps its row (its weights were copied beside the run).
checkpoint_record = partial(runs.checkpoint_record, GrpoCheckpoint, keep=Q(generator__isnull=False))


def sample_record(*, run_id: int, step: int, prompt_index: int, prompt: str, seed: int, image: str,
                  reward: float | None) -> GrpoSample:
    sample, _ = GrpoSample.objects.update_or_create(
        run_id=run_id, step=step, prompt_index=prompt_index, seed=seed,
        defaults={"prompt": prompt, "image": image, "reward": runs.json_safe(reward)})
    return sample


def _copy_lora(source: Path, target_dir: Path) -> Path:
    """The LoRA weights beside the run (a hard link where the filesystem allows, else a copy; written under a
    temporary name and renamed), so pruning the checkpoint never breaks a generator."""
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / LORA_NAME
    if target.is_file():
        return target_dir
    temp = target_dir / f".{LORA_NAME}.{os.getpid()}.tmp"
    try:
        os.link(source, temp)
    except OSError:
        shutil.copyfile(source, temp)
    os.replace(temp, target)
    return target_dir


@transaction.atomic
def checkpoint_register_generator(*, checkpoint: GrpoCheckpoint, created_by=None) -> tuple[Generator, bool]:
    """A new diffusers generator: the base generator's settings plus the checkpoint's LoRA weights, named
    "<run> step <n>". Registering the same checkpoint again returns the generator made the first time
    (created = False)."""
    checkpoint = GrpoCheckpoint.objects.select_for_update().select_related("run__generator").get(pk=checkpoint.pk)
    if checkpoint.generator_id is not None:
        return checkpoint.generator, False
    run = checkpoint.run
    source = Path(checkpoint.path) / LORA_NAME
    if not source.is_file():
        raise ValidationError({"checkpoint": [f"No LoRA weights at {str(source)!r} (the checkpoint was pruned)."]})
    name = f"{run.name} step {checkpoint.step}"
    if Generator.objects.filter(name=name).exists():
        name = f"{run.name} (GRPO run {run.pk}) step {checkpoint.step}"
    lora = _copy_lora(source, Path(run.output_dir) / "generators" / f"step-{checkpoint.step:08d}")
    generator = generator_create(
        name=name[:100], backend=Backend.DIFFUSERS, settings={**run.generator.settings, "lora": str(lora)},
        description=f"GRPO run {run.pk} ({run.name}), checkpoint at step {checkpoint.step}, on "
                    f"{run.generator.name!r} with the reward {run.reward}.",
        created_by=created_by)
    checkpoint.generator = generator
    checkpoint.save(update_fields=["generator"])
    return generator, True
