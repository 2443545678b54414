"""The reward-model jobs. Training: export the run's frozen dataset version to Parquet in the run's folder (once; a
resumed job reuses it), train SpatialScore with ml.reward.train, and record what the trainer reports: metric
rows for the live curves, checkpoint rows, and progress (step of max steps), through which a cancel stops it.

A requeued job (its worker was lost) resumes from the last complete checkpoint; metric and checkpoint rows are
keyed by step, so the steps it repeats are stored once.

Evaluation and scoring jobs load a checkpoint's model once per worker process (SCORERS keeps the last one) and
score in batches of settings.REWARD_SCORE_BATCH pairs."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage

from ml.slot import OneSlot
from spatiallab.datasets.exports import write_export
from spatiallab.jobs.models import JobStatus
from spatiallab.rewards.models import RewardCheckpoint, RewardEvaluation, RewardRun
from spatiallab.rewards.services import (
    checkpoint_record,
    evaluation_finish,
    evaluation_set_status,
    metric_record,
    pair_scores_store,
    queue_order_by_scores,
    run_set_status,
    score_targets,
)
from spatiallab.verification.models import VerificationQueue

EXPORT_NAME = "data.parquet"


def version_parquet(version, target: Path) -> Path:
    """The version's Parquet export (the file users download), written once to `target` under a temporary name
    and renamed, so a half-written file is never taken for the export."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.parent / f".{target.name}.{os.getpid()}.tmp"
    with open(temp, "wb") as handle:
        write_export(version, "parquet", "", handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, target)
    return target


def shared_parquet(version) -> Path:
    """The version's export for evaluations, shared by every evaluation of it (keyed by its content hash)."""
    return version_parquet(version, Path(settings.MEDIA_ROOT) / "reward-data" / f"{version.content_hash}.parquet")


SCORERS = OneSlot("reward model")


def load_scorer(checkpoint_path: str):
    """The checkpoint's SpatialScore in eval mode on this worker's device, loaded once while jobs for the same
    checkpoint keep coming."""

    def load():
        import torch

        from ml.reward.model import SpatialScore

        device = "cuda" if torch.cuda.is_available() else "cpu"
        return SpatialScore.from_checkpoint(checkpoint_path, device=device).eval()

    return SCORERS.get(str(checkpoint_path), load)


def run_train_reward(ctx) -> dict:
    from ml.reward.config import ModelConfig, TrainConfig, from_dict  # torch only inside the task path
    from ml.reward.train import train

    run = RewardRun.objects.select_related("dataset_version").get(pk=ctx.params["run"])
    folder = Path(run.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    run_set_status(run_id=run.pk, status=JobStatus.RUNNING)
    ctx.progress(0, message="exporting the dataset version")
    data = version_parquet(run.dataset_version, folder / EXPORT_NAME)

    resume = bool(ctx.params.get("resume")) or ctx.claim.job.attempts > 1 or bool(ctx.checkpoint)
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

    processes = training_processes()
    if processes > 1:
        summary = train_distributed(model_config, train_config, processes, on_metrics, folder / "train.log")
    else:
        summary = train(model_config, train_config, on_metrics=on_metrics)
    run_set_status(run_id=run.pk, status=JobStatus.SUCCEEDED)
    return {"run": run.pk, "step": summary["step"], "total_steps": summary["total_steps"],
            "eval": summary["eval"], "checkpoint": summary["checkpoint"], "params_sha256": summary["params_sha256"],
            "world_size": summary["world_size"]}


def training_processes() -> int:
    """settings.REWARD_TRAIN_PROCESSES, or (0) one process per visible CUDA device."""
    if settings.REWARD_TRAIN_PROCESSES > 0:
        return settings.REWARD_TRAIN_PROCESSES
    import torch

    return max(1, torch.cuda.device_count())


def train_distributed(model_config, train_config, processes: int, on_metrics, log_path: Path) -> dict:
    """Runs `python -m ml.reward.train` as `processes` DDP processes under torchrun (one per GPU; gloo on CPU)
    and relays rank 0's metric lines to `on_metrics` as they come. A cancel (on_metrics raising) or any error
    stops the whole process group; the processes' stderr is kept in `log_path`."""
    from ml.reward.config import to_arguments

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", "ml.reward.train", *to_arguments(model_config), *to_arguments(train_config)]
    summaries = []
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, cwd=settings.BASE_DIR,
                                   start_new_session=True, text=True, bufsize=1)
        try:
            for line in process.stdout:
                if not line.startswith("{"):
                    continue
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if "summary" in message:
                    summaries.append(message["summary"])
                elif "kind" in message:
                    on_metrics(message)
            code = process.wait()
        except BaseException:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            raise
    if code != 0:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"distributed training exited with code {code}: " + " | ".join(tail))
    return next(summary for summary in summaries if summary.get("rank") == 0)


def run_evaluate_reward(ctx) -> dict:
    from ml.reward.evaluate import evaluate_model

    evaluation = RewardEvaluation.objects.select_related("dataset_version").get(pk=ctx.params["evaluation"])
    evaluation_set_status(evaluation_id=evaluation.pk, status=JobStatus.RUNNING)
    ctx.progress(0, message="exporting the dataset version")
    data = shared_parquet(evaluation.dataset_version)
    ctx.progress(0, message="loading the checkpoint")
    model = load_scorer(evaluation.checkpoint_path)

    def on_progress(done: int, total: int) -> None:
        ctx.progress(done, total=total, message=f"{done} of {total} pairs scored")

    report = evaluate_model(model, data, split=evaluation.split, batch_size=settings.REWARD_SCORE_BATCH,
                            per_pair=True, on_progress=on_progress)
    per_pair = report.pop("per_pair")
    report["data"] = f"dataset version {evaluation.dataset_version_id} ({evaluation.dataset_hash[:12]})"
    evaluation_finish(evaluation_id=evaluation.pk, report=report, per_pair=per_pair)
    return {"evaluation": evaluation.pk, "pairs": report["pairs"], "accuracy": report["overall"]["accuracy"]}


def open_image(name: str):
    """A stored image (storage name) as an RGB PIL image, decoded while the file is open."""
    from PIL import Image

    with default_storage.open(name, "rb") as handle, Image.open(handle) as image:
        return image.convert("RGB")


def run_score_pairs(ctx) -> dict:
    checkpoint = RewardCheckpoint.objects.get(pk=ctx.params["checkpoint"])
    queue = VerificationQueue.objects.get(pk=ctx.params["queue"]) if ctx.params.get("queue") else None
    pairs = list(score_targets(checkpoint=checkpoint, queue=queue, selection=ctx.params.get("selection"),
                               limit=ctx.params.get("limit", 2000))
                 .select_related("prompt").only("pk", "winner_image", "loser_image", "prompt__text"))
    total = len(pairs)
    ctx.progress(0, total=total, message="loading the checkpoint")
    model = load_scorer(checkpoint.path) if pairs else None
    size = settings.REWARD_SCORE_BATCH
    for start in range(0, total, size):
        batch = pairs[start:start + size]
        prompts = [pair.prompt.text for pair in batch]
        images = [open_image(pair.winner_image) for pair in batch] + [open_image(pair.loser_image) for pair in batch]
        out = model.predict(prompts + prompts, images, batch_size=2 * size)
        n = len(batch)
        pair_scores_store(checkpoint_id=checkpoint.pk, rows=[
            (pair.pk, out.mu[i].item(), out.log_sigma[i].item(), out.mu[n + i].item(), out.log_sigma[n + i].item())
            for i, pair in enumerate(batch)])
        ctx.progress(start + n, total=total, message=f"{start + n} of {total} pairs scored")
    ordered = None
    if queue is not None and ctx.params.get("order_by"):
        ordered = queue_order_by_scores(queue_id=queue.pk, checkpoint_id=checkpoint.pk, order_by=ctx.params["order_by"])
        ctx.progress(total, total=total, message=f"{ordered} open items ordered by {ctx.params['order_by']}")
    return {"checkpoint": checkpoint.pk, "scored": total, "ordered": ordered}
