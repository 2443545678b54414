"""The GRPO job: fine-tune a diffusers generator with Flow-GRPO (ml.grpo.train) against a reward-model checkpoint
or a programmatic reward, and record what the trainer reports: metric rows for the live curves, checkpoint rows,
the evaluation images (stored through the storage API, one GrpoSample row each; step 0 is the base model) and
progress (step of max steps), through which a cancel stops it.

The prompt sets' texts are written once into the run's folder (train.jsonl, eval.jsonl): a resumed job trains on
exactly the prompts the run started with. A requeued job (its worker was lost) resumes from the last complete
checkpoint; metric, checkpoint and sample rows are keyed by step, so the steps it repeats are stored once."""

import io
import json
import os
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from spatiallab.grpo.models import GrpoRun
from spatiallab.grpo.services import checkpoint_record, metric_record, run_set_status, sample_record
from spatiallab.jobs.models import JobStatus
from spatiallab.prompts.models import Prompt

# Keys of an eval event that are stored on the sample rows instead of the metric row.
SAMPLE_KEYS = ("images", "prompts")


def prompts_file(prompt_set_id: int, target: Path) -> Path:
    """The prompt set's texts as JSON lines, written once under a temporary name and renamed."""
    if target.exists():
        return target
    texts = Prompt.objects.filter(prompt_set_id=prompt_set_id).order_by("position", "pk").values_list("text",
                                                                                                        flat=True)
    temp = target.parent / f".{target.name}.{os.getpid()}.tmp"
    with open(temp, "w", encoding="utf-8") as handle:
        for text in texts:
            handle.write(json.dumps({"prompt": text}) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, target)
    return target


def resolved_model(path: str) -> str:
    """A relative pipeline folder means one below this worker's MODELS_DIR."""
    return path if Path(path).is_absolute() else str(Path(settings.MODELS_DIR) / path)


def store_eval_images(run_id: int, event: dict) -> None:
    folder = f"grpo-runs/{run_id}/eval/step-{int(event['step']):08d}"
    for i, (image, prompt_index, prompt, seed, reward) in enumerate(zip(
            event["images"], event["prompt_index"], event["prompts"], event["seeds"], event["rewards"],
            strict=True)):
        name = f"{folder}/{i}.png"
        if default_storage.exists(name):  # a resumed job evaluates a step again: replace, never add a suffix
            default_storage.delete(name)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        stored = default_storage.save(name, ContentFile(buffer.getvalue()))
        sample_record(run_id=run_id, step=int(event["step"]), prompt_index=prompt_index, prompt=prompt, seed=seed,
                      image=stored, reward=reward)


def run_train_grpo(ctx) -> dict:
    from ml.grpo.config import GRPOConfig, from_dict  # torch only inside the task path
    from ml.grpo.train import train

    run = GrpoRun.objects.get(pk=ctx.params["run"])
    folder = Path(run.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    run_set_status(run_id=run.pk, status=JobStatus.RUNNING)
    total = int(run.config["max_steps"])
    ctx.progress(0, total=total, message="loading the generator")
    resume = bool(ctx.params.get("resume")) or ctx.claim.job.attempts > 1 or bool(ctx.checkpoint)
    config = from_dict(GRPOConfig, {
        **run.config, "pretrained": resolved_model(run.base_model), "output_dir": str(folder),
        "prompts": str(prompts_file(run.train_prompt_set_id, folder / "train.jsonl")),
        "eval_prompts": str(prompts_file(run.eval_prompt_set_id, folder / "eval.jsonl")),
        "reward": run.reward, "reward_model": run.reward_model, "resume": resume})
    last = {"train": None, "eval": None}

    def on_metrics(metrics: dict) -> None:
        kind, step = metrics.get("kind"), int(metrics.get("step", 0))
        if kind == "train":
            values = {key: value for key, value in metrics.items() if key not in ("kind", "step")}
            metric_record(run_id=run.pk, step=step, kind="train", values=values)
            last["train"] = values
            ctx.progress(step, total=total, checkpoint={"step": step},
                         message=f"step {step}: reward {values['reward_mean']:.4f} ± {values['reward_std']:.4f}, "
                                 f"KL {values['kl']:.2e}")
        elif kind == "eval":
            store_eval_images(run.pk, metrics)
            values = {key: value for key, value in metrics.items() if key not in ("kind", "step", *SAMPLE_KEYS)}
            metric_record(run_id=run.pk, step=step, kind="eval", values=values)
            last["eval"] = values
            mean = values.get("reward_mean")
            ctx.progress(step, total=total, checkpoint={"step": step},
                         message=f"step {step}: eval reward {mean:.4f}" if mean is not None else f"step {step}")
        elif kind == "checkpoint":
            checkpoint_record(run_id=run.pk, step=step, path=metrics["path"], metrics=dict(last))
            ctx.progress(step, total=total, message=f"checkpoint at step {step}", checkpoint={"step": step})
        elif kind == "resumed":
            ctx.progress(step, total=total, message=f"resumed from step {step}", checkpoint={"step": step})

    summary = train(config, on_metrics=on_metrics)
    run_set_status(run_id=run.pk, status=JobStatus.SUCCEEDED)
    evaluation = summary.get("eval") or {}
    return {"run": run.pk, "step": summary["step"], "total_steps": summary["total_steps"],
            "eval_reward_mean": evaluation.get("reward_mean"), "checkpoint": summary["checkpoint"],
            "lora_sha256": summary["lora_sha256"]}
