"""The reward-training job: export the run's frozen dataset version to Parquet in the run's folder (once; a
resumed job reuses it), train SpatialScore with ml.reward.train, and record what the trainer reports: metric
rows for the live curves, checkpoint rows, and progress (step of max steps), through which a cancel stops it.

A requeued job (its worker was lost) resumes from the last complete checkpoint; metric and checkpoint rows are
keyed by step, so the steps it repeats are stored once."""

import os
from pathlib import Path

from spatiallab.datasets.exports import write_export
from spatiallab.jobs.models import JobStatus
from spatiallab.rewards.models import RewardRun
from spatiallab.rewards.services import checkpoint_record, metric_record, run_set_status

EXPORT_NAME = "data.parquet"


def _export(run: RewardRun, folder: Path) -> Path:
    """Written under a temporary name and renamed, so a half-written file is never taken for the export."""
    target = folder / EXPORT_NAME
    if target.exists():
        return target
    temp = folder / f".{EXPORT_NAME}.tmp"
    with open(temp, "wb") as handle:
        write_export(run.dataset_version, "parquet", "", handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, target)
    return target


def run_train_reward(ctx) -> dict:
    from ml.reward.config import ModelConfig, TrainConfig, from_dict  # torch only inside the task path
    from ml.reward.train import train

    run = RewardRun.objects.select_related("dataset_version").get(pk=ctx.params["run"])
    folder = Path(run.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    run_set_status(run_id=run.pk, status=JobStatus.RUNNING)
    ctx.progress(0, message="exporting the dataset version")
    data = _export(run, folder)

    resume = ctx.claim.job.attempts > 1 or bool(ctx.checkpoint)
    model_config = from_dict(ModelConfig, {**run.config["model"], "backbone": run.base_model})
    train_config = from_dict(TrainConfig, {**run.config["train"], "data": str(data), "output_dir": str(folder),
                                           "resume": resume})
    last = {"train": None, "eval": None}

    def on_metrics(metrics: dict) -> None:
        kind, step = metrics.get("kind"), int(metrics.get("step", 0))
        values = {key: value for key, value in metrics.items() if key not in ("kind", "step")}
        if kind in ("train", "eval"):
            metric_record(run_id=run.pk, step=step, kind=kind, values=values)
            last[kind] = values
            total = metrics.get("total_steps") if kind == "train" else None
            message = (f"step {step}: loss {values['loss']:.4f}, accuracy {values['accuracy']:.3f}"
                       if kind == "train" else f"step {step}: eval accuracy {values.get('accuracy', 0):.3f}")
            ctx.progress(step, total=total, message=message, checkpoint={"step": step})
        elif kind == "checkpoint":
            checkpoint_record(run_id=run.pk, step=step, path=metrics["path"], metrics=dict(last))
            ctx.progress(step, message=f"checkpoint at step {step}", checkpoint={"step": step})
        elif kind == "resumed":
            ctx.progress(step, message=f"resumed from step {step}", checkpoint={"step": step})

    summary = train(model_config, train_config, on_metrics=on_metrics)
    run_set_status(run_id=run.pk, status=JobStatus.SUCCEEDED)
    return {"run": run.pk, "step": summary["step"], "total_steps": summary["total_steps"],
            "eval": summary["eval"], "checkpoint": summary["checkpoint"], "params_sha256": summary["params_sha256"]}
