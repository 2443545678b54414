"""Training SpatialScore on preference pairs: one readable loop (nanoGPT style).

    python -m ml.reward.train --backbone MODELS/Qwen2.5-VL-7B-Instruct --data pairs.parquet --output-dir runs/rm1
    torchrun --nproc-per-node 8 -m ml.reward.train ...        # DDP: nccl on GPUs, gloo on CPU

Each optimizer step: grad_accum micro-batches of batch_size pairs per process; a micro-batch is one forward pass
over 2 x batch_size sequences (the winners, then the losers), the pairwise loss, backward (DDP all-reduces on the
last micro-batch only); then gradient clipping, AdamW, the warm-up + cosine schedule.

Determinism and resuming: everything random is a function of the seed and the step. The data order of an epoch is
a seeded permutation (data.shard_batches), so the position in the data follows from the step; the Monte-Carlo
noise of the uncertainty loss comes from a generator seeded by (seed, step, micro-batch, rank); dropout draws from
torch's global RNG, whose state (with Python's, NumPy's and CUDA's, for every rank) is saved in each checkpoint. A
run resumed from a checkpoint therefore repeats the uninterrupted run's losses exactly on CPU (tests/ml).

Checkpoints (only rank 0 writes): output_dir/checkpoints/step-NNNNNNNN/ with reward_model.safetensors (LoRA,
head, reward-token row), reward_model.json (model settings) and trainer_state.pt (optimizer, scheduler, RNG states,
step, settings). Each is written under a temporary name and renamed when complete; only then are the oldest pruned
down to keep_last. A crash mid-write leaves a .tmp-* folder that resuming ignores (and the next save removes).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ml.reward.config import ModelConfig, TrainConfig, add_arguments, from_arguments, to_dict
from ml.reward.data import PairCollator, PreferencePairs, shard_batches
from ml.reward.losses import bradley_terry_loss, pairwise_correct, pairwise_loss
from ml.reward.model import SpatialScore, autocast, to_device

Metrics = Callable[[dict], None]
STATE_NAME = "trainer_state.pt"


def train(model_config: ModelConfig, config: TrainConfig, *, on_metrics: Metrics | None = None) -> dict:
    """Trains (or, with config.resume, continues) and returns a summary: final step, per-step history (loss,
    accuracy, lr, grad norm), the last evaluation, the last checkpoint and a digest of the trained weights.
    `on_metrics` (rank 0 only) receives dicts of kind train / eval / checkpoint as they happen."""
    rank, world, device, owns_group = setup_distributed(config.device)
    try:
        return _train(model_config, config, on_metrics, rank, world, device)
    finally:
        if owns_group:
            dist.destroy_process_group()


def _train(model_config, config, on_metrics, rank, world, device) -> dict:
    emit = on_metrics if (on_metrics and rank == 0) else (lambda metrics: None)
    checkpoints = Path(config.output_dir) / "checkpoints"

    # The model: the same seed on every rank gives the same new weights.
    seed_all(config.seed)
    model = SpatialScore.from_pretrained(model_config.backbone, model_config, device=device)
    if config.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    model.train()
    seed_all(config.seed + 1 + rank)  # dropout masks differ between ranks

    # The data.
    train_set = PreferencePairs(config.data, config.train_split)
    eval_set = (PreferencePairs(config.data, config.eval_split, limit=config.max_eval_pairs)
                if config.eval_split else None)
    if len(train_set) == 0:
        raise ValueError(f"{config.data} has no pairs in split {config.train_split!r}")
    collate = PairCollator(model.inputs)
    train_collate = PairCollator(model.inputs, mismatch=config.mismatch_weight > 0)
    micro_per_epoch = len(shard_batches(len(train_set), batch_size=config.batch_size, rank=0, world=world,
                                        seed=config.seed, epoch=0))
    total_steps = config.max_steps or max(1, math.ceil(config.epochs * micro_per_epoch / config.grad_accum))

    # The optimizer: weight decay on matrices only (nanoGPT's rule).
    params = [param for _, param in model.trainable_parameters()]
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.999), eps=1e-8)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, config, total_steps))

    step = 0
    if config.resume and (last := latest_checkpoint(checkpoints)) is not None:
        step = load_checkpoint(last, model, optimizer, scheduler, rank=rank, world=world, seed=config.seed)
        emit({"kind": "resumed", "step": step, "path": str(last)})

    ddp = model
    if world > 1:
        # Frozen weights are identical on every rank (the same folder): DDP need not broadcast 8 B parameters.
        frozen = [name for name, param in model.named_parameters() if not param.requires_grad]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, frozen)
        ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                      broadcast_buffers=False)

    loader = iter(torch.utils.data.DataLoader(
        train_set, batch_sampler=micro_batches(len(train_set), config, rank, world, start=step * config.grad_accum),
        collate_fn=train_collate, num_workers=config.num_workers,
        # Without its own generator the DataLoader would draw its worker seed from the global RNG.
        generator=torch.Generator().manual_seed(config.seed)))

    history, last_eval, saved = [], None, None
    started = time.perf_counter()
    while step < total_steps:
        tick = time.perf_counter()
        loss_sum = correct = pairs = mismatch_sum = mismatch_pairs = 0.0
        for micro in range(config.grad_accum):
            batch = next(loader)
            n = batch["pairs"]
            last_micro = micro == config.grad_accum - 1
            sync = contextlib.nullcontext() if (last_micro or world == 1) else ddp.no_sync()
            with sync:
                with autocast(device, config.bf16):
                    out = ddp(**to_device(batch["inputs"], device))
                mu_w, mu_l = out.mu[:n], out.mu[n:2 * n]
                loss = pairwise_loss(config.loss, mu_w, out.log_sigma[:n], mu_l, out.log_sigma[n:2 * n],
                                     samples=config.mc_samples, generator=mc_generator(config.seed, step, micro, rank))
                total = loss
                if config.mismatch_weight > 0:
                    valid = batch["mismatch_valid"].to(device)
                    if valid.any():
                        mismatch = bradley_terry_loss(mu_w[valid], out.mu[2 * n:][valid])
                        total = loss + config.mismatch_weight * mismatch
                        mismatch_sum += mismatch.item() * int(valid.sum())
                        mismatch_pairs += int(valid.sum())
                (total / config.grad_accum).backward()
            loss_sum += loss.item() * n
            correct += pairwise_correct(mu_w.detach(), mu_l.detach()).sum().item()
            pairs += n
        if config.max_grad_norm > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm).item()
        else:
            norms = [p.grad.norm() for p in params if p.grad is not None]
            grad_norm = torch.linalg.vector_norm(torch.stack(norms)).item() if norms else 0.0
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1

        loss_sum, correct, pairs = all_sum([loss_sum, correct, pairs], world, device)
        metrics = {"kind": "train", "step": step, "total_steps": total_steps, "loss": loss_sum / pairs,
                   "accuracy": correct / pairs, "lr": lr, "grad_norm": grad_norm,
                   "epoch": step * config.grad_accum / micro_per_epoch,
                   "pairs_per_s": pairs / (time.perf_counter() - tick), "elapsed_s": time.perf_counter() - started}
        if config.mismatch_weight > 0:
            mismatch_sum, mismatch_pairs = all_sum([mismatch_sum, mismatch_pairs], world, device)
            metrics["mismatch_loss"] = mismatch_sum / max(mismatch_pairs, 1)
        history.append(metrics)
        # The last step: the planned one, or the one that used up the time budget.
        last = step == total_steps or bool(config.max_seconds and metrics["elapsed_s"] >= config.max_seconds)
        if config.max_seconds and world > 1:  # every rank stops at the same step, the first to run out decides
            last = all_sum([float(last)], world, device)[0] > 0
        if step % config.log_every == 0 or last:
            emit(metrics)
        if eval_set is not None and len(eval_set) and (
                (config.eval_every and step % config.eval_every == 0) or last):
            last_eval = evaluate_pairs(model, eval_set, collate, config, rank=rank, world=world, device=device)
            emit({"kind": "eval", "step": step, "split": config.eval_split, **last_eval})
        if (config.save_every and step % config.save_every == 0) or last:
            rng = gather_rng_states(world)
            if rank == 0:
                saved = save_checkpoint(checkpoints, step, model, optimizer, scheduler, rng, model_config, config,
                                        world=world, metrics={"train": metrics, "eval": last_eval})
                emit({"kind": "checkpoint", "step": step, "path": str(saved)})
            if world > 1:
                dist.barrier()
        if last:
            break

    saved = saved or latest_checkpoint(checkpoints)
    return {"rank": rank, "world_size": world, "step": step, "total_steps": total_steps, "history": history,
            "eval": last_eval, "checkpoint": str(saved) if saved else None,
            "params_sha256": weights_digest(model)}


# --- Pieces of the loop ---------------------------------------------------------------------------------------


def lr_factor(step: int, config: TrainConfig, total_steps: int) -> float:
    """Linear warm-up over warmup_steps, then constant or a cosine down to min_lr_ratio at total_steps."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    progress = min(1.0, (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps))
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def micro_batches(n: int, config: TrainConfig, rank: int, world: int, *, start: int = 0) -> Iterator[list[int]]:
    """This rank's micro-batches (lists of indices) from global micro-batch `start` on, epoch after epoch."""
    per_epoch = len(shard_batches(n, batch_size=config.batch_size, rank=rank, world=world, seed=config.seed, epoch=0))
    epoch, offset = divmod(start, per_epoch)
    while True:
        yield from shard_batches(n, batch_size=config.batch_size, rank=rank, world=world, seed=config.seed,
                                 epoch=epoch)[offset:]
        epoch, offset = epoch + 1, 0


def mc_generator(seed: int, step: int, micro: int, rank: int) -> torch.Generator:
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 1_009 + micro) * 1_013 + rank)


@torch.no_grad()
def evaluate_pairs(model: SpatialScore, dataset: PreferencePairs, collate: PairCollator, config: TrainConfig, *,
                   rank: int = 0, world: int = 1, device: torch.device | None = None) -> dict:
    """Loss and pairwise accuracy on `dataset` in eval mode, the pairs shared out between ranks."""
    device = device or model.device
    was_training = model.training
    model.eval()
    loss_sum = correct = pairs = 0.0
    mine = list(range(rank, len(dataset), world))
    for start in range(0, len(mine), config.eval_batch_size):
        batch = collate([dataset[i] for i in mine[start:start + config.eval_batch_size]])
        n = batch["pairs"]
        with autocast(device, config.bf16):
            out = model(**to_device(batch["inputs"], device))
        mu_w, mu_l = out.mu[:n], out.mu[n:]
        loss = pairwise_loss(config.loss, mu_w, out.log_sigma[:n], mu_l, out.log_sigma[n:], samples=config.mc_samples,
                             generator=mc_generator(config.seed, -1, start, rank))
        loss_sum += loss.item() * n
        correct += pairwise_correct(mu_w, mu_l).sum().item()
        pairs += n
    model.train(was_training)
    loss_sum, correct, pairs = all_sum([loss_sum, correct, pairs], world, device)
    return {"loss": loss_sum / max(pairs, 1), "accuracy": correct / max(pairs, 1), "pairs": int(pairs)}


# --- Checkpoints ----------------------------------------------------------------------------------------------


def checkpoint_dirs(root: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a temporary folder is never named step-*)."""
    if not root.is_dir():
        return []
    found = [path for path in root.glob("step-*") if path.is_dir() and (path / STATE_NAME).is_file()]
    return sorted(found, key=lambda path: int(path.name.split("-")[1]))


def latest_checkpoint(root: Path) -> Path | None:
    found = checkpoint_dirs(Path(root))
    return found[-1] if found else None


def save_checkpoint(root: Path, step: int, model: SpatialScore, optimizer, scheduler, rng_states: list[dict],
                    model_config: ModelConfig, config: TrainConfig, *, world: int, metrics: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):  # left by a crash mid-write
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}-{os.getpid()}"
    model.save(tmp, extra={"step": step, "metrics": metrics or {}})
    torch.save({"step": step, "world_size": world, "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "rng": rng_states,
                "train_config": to_dict(config), "model_config": to_dict(model_config)}, tmp / STATE_NAME)
    for path in tmp.iterdir():
        fsync_path(path)
    fsync_path(tmp)
    old = None
    if final.exists():  # the same step again (a resumed run): swap, so a complete one exists at every moment
        old = root / f".tmp-old-{final.name}-{os.getpid()}"
        os.rename(final, old)
    os.rename(tmp, final)
    fsync_path(root)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    for stale in checkpoint_dirs(root)[:-config.keep_last]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def load_checkpoint(path: Path, model: SpatialScore, optimizer, scheduler, *, rank: int, world: int, seed: int) -> int:
    from safetensors.torch import load_file

    from ml.reward.model import WEIGHTS_NAME

    model.load_trainable_state_dict(load_file(path / WEIGHTS_NAME))
    # Our own file, holding Python and NumPy RNG states besides tensors: not loadable with weights_only.
    state = torch.load(path / STATE_NAME, map_location="cpu", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if len(state["rng"]) == world:
        set_rng_state(state["rng"][rank])
    else:  # another world size: the data order still follows, dropout noise cannot
        seed_all(seed + 1 + rank + state["step"])
    return int(state["step"])


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- RNG, distributed -----------------------------------------------------------------------------------------


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather_rng_states(world: int) -> list[dict]:
    """Every rank's RNG states, in rank order (a collective: all ranks call it)."""
    if world == 1:
        return [rng_state()]
    states: list = [None] * world
    dist.all_gather_object(states, rng_state())
    return states


def setup_distributed(device_name: str = "auto") -> tuple[int, int, torch.device, bool]:
    """(rank, world size, device, whether this call started the process group). torchrun sets WORLD_SIZE, RANK
    and LOCAL_RANK; then the group is nccl on CUDA and gloo on CPU."""
    use_cuda = torch.cuda.is_available() if device_name == "auto" else device_name.startswith("cuda")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, torch.device("cuda" if use_cuda else "cpu"), False
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), device, owns


def all_sum(values: list[float], world: int, device: torch.device) -> list[float]:
    if world == 1:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over a state dict's keys and float32 values, in key order (equal weights, equal digest)."""
    digest = hashlib.sha256()
    for key, value in sorted(state.items()):
        digest.update(key.encode())
        digest.update(value.float().numpy().tobytes())
    return digest.hexdigest()


def weights_digest(model: SpatialScore) -> str:
    return state_digest(model.trainable_state_dict())


# --- CLI ------------------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ml.reward.train",
        description="Train the SpatialScore reward model on a pair export (Parquet). Under torchrun, one process "
                    "per GPU (or CPU process, gloo). Prints one JSON line per metrics event (rank 0) and a final "
                    "JSON summary line per rank.")
    add_arguments(parser, ModelConfig, "model")
    add_arguments(parser, TrainConfig, "training")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    model_config, config = from_arguments(ModelConfig, args), from_arguments(TrainConfig, args)
    if not model_config.backbone or not config.data or not config.output_dir:
        parser().error("--backbone, --data and --output-dir are required")

    def report(metrics: dict) -> None:
        sys.stdout.write(json.dumps(metrics) + "\n")
        sys.stdout.flush()

    summary = train(model_config, config, on_metrics=report)
    final = {key: value for key, value in summary.items() if key != "history"}
    # One line per rank, written at once (the ranks share stdout under torchrun).
    sys.stdout.write(json.dumps({"summary": final}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
