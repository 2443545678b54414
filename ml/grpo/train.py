"""Flow-GRPO with top-k filtering: fine-tunes a flow-matching text-to-image model's transformer (LoRA) against a
reward. One readable loop (nanoGPT style); the formulas are in docs/grpo.md, ml/grpo/sde.py and objective.py.

    python -m ml.grpo.train --pretrained MODELS/FLUX.1-dev --prompts train.txt --eval-prompts eval.txt \
        --reward spatialscore --reward-model runs/rm1/checkpoints/step-00001000 --output-dir runs/grpo1
    torchrun --nproc-per-node 8 -m ml.grpo.train ...        # DDP: nccl on GPUs, gloo on CPU

One GRPO step, on each process for its share of the step's prompts (groups are never split between processes):
1. sample G images per prompt with the SDE (sample_steps steps, noise_level), recording every step's latents and
   log-probability: G x sample_steps transformer evaluations per prompt;
2. decode and score them; advantages per group, keeping the top-k and bottom-k (objective.py);
3. for the kept samples only, on train_timesteps of their steps: recompute the log-probability under the current
   policy (one forward/backward pass each) and, if beta > 0, the reference's mean with the adapter off (one
   forward pass without gradient); the clipped loss; updates_per_step optimizer steps, each averaging the
   gradients of its share of the kept samples over all processes.

Everything random is a function of (seed, step): the prompts of a step, each sample's noise (its own generator)
and the trained timesteps. A resumed run therefore repeats the uninterrupted one on CPU. Only rank 0 reports
metrics and writes checkpoints: output_dir/checkpoints/step-NNNNNNNN/ holding pytorch_lora_weights.safetensors
(what `load_lora_weights` reads) and trainer_state.pt (optimizer, RNG states, EMA, step, config), written into a
temporary folder and renamed; older ones are pruned to keep_last afterwards."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.distributed as dist

from ml.generation.diffusers_backend import DTYPES
from ml.grpo.config import GRPOConfig, add_arguments, from_arguments, to_arguments, to_dict
from ml.grpo.objective import group_advantages, grpo_loss
from ml.grpo.policy import FlowPolicy, sample, seeded_generators
from ml.grpo.rewards import RewardFn, build_reward
from ml.grpo.sde import gaussian_kl, sde_step
from ml.reward.train import (
    all_sum,
    checkpoint_dirs,
    fsync_path,
    gather_rng_states,
    latest_checkpoint,
    set_rng_state,
    setup_distributed,
    state_digest,
)

__all__ = ["checkpoint_dirs", "evaluate", "grpo_step", "latest_checkpoint", "main", "to_arguments", "train"]

Metrics = Callable[[dict], None]
STATE_NAME = "trainer_state.pt"  # the same name ml.reward.train's checkpoint_dirs looks for
LORA_NAME = "pytorch_lora_weights.safetensors"


def train(config: GRPOConfig, *, on_metrics: Metrics | None = None, reward_fn: RewardFn | None = None) -> dict:
    """Trains (or, with config.resume, continues) and returns a summary: final step, per-step history, the last
    evaluation (with its images), the last checkpoint and a digest of the LoRA weights. `on_metrics` (rank 0 only)
    receives dicts of kind train / eval / checkpoint / resumed; eval events carry the PIL images of their fixed
    seeds (step 0 is the base model). `reward_fn` replaces the registered reward config.reward names."""
    rank, world, device, owns_group = setup_distributed(config.device)
    try:
        return _train(config, on_metrics, reward_fn, rank, world, device)
    finally:
        if owns_group:
            dist.destroy_process_group()


def _train(config, on_metrics, reward_fn, rank, world, device) -> dict:
    emit = on_metrics if (on_metrics and rank == 0) else (lambda metrics: None)
    if config.prompts_per_step % world:
        raise ValueError(f"prompts_per_step ({config.prompts_per_step}) must divide by the {world} processes")
    prompts = read_prompts(config.prompts)
    eval_prompts = read_prompts(config.eval_prompts) if config.eval_prompts else []
    checkpoints = Path(config.output_dir) / "checkpoints"

    # CPU always computes in float32 (see ml.generation.diffusers_backend); auto is bfloat16 on CUDA.
    dtype = torch.float32 if device.type == "cpu" else (
        torch.bfloat16 if config.dtype == "auto" else DTYPES[config.dtype])
    policy = FlowPolicy.from_pretrained(config.pretrained, device=device, dtype=dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)  # the same LoRA initialisation on every rank
        policy.add_lora(rank=config.lora_rank, alpha=config.lora_alpha, targets=config.lora_targets,
                        init=config.lora_init)
    params = policy.lora_parameters()
    if world > 1:
        for param in params:
            dist.broadcast(param.data, src=0)
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=(config.adam_beta1, config.adam_beta2),
                                  weight_decay=config.weight_decay, eps=1e-8)
    ema = [param.detach().clone() for param in params] if config.ema_decay > 0 else None
    reward = reward_fn or build_reward(config.reward, reward_model=config.reward_model, device=device,
                                       batch_size=config.reward_batch_size)

    step = 0
    if config.resume and (last := latest_checkpoint(checkpoints)) is not None:
        step = load_checkpoint(last, policy, optimizer, ema, rank=rank, world=world)
        emit({"kind": "resumed", "step": step, "path": str(last)})

    history, last_eval, saved = [], None, None

    def run_eval(at: int) -> dict:
        result = evaluate(policy, eval_prompts, config, reward, rank=rank, world=world, ema=ema, params=params)
        if rank == 0 and config.save_eval_images and config.output_dir:
            folder = Path(config.output_dir) / "eval" / f"step-{at:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for image, prompt_index, seed in zip(result["images"], result["prompt_index"], result["seeds"],
                                                 strict=True):
                image.save(folder / f"p{prompt_index:04d}-s{seed}.png")
        emit({"kind": "eval", "step": at, "total_steps": config.max_steps, **result})
        return result

    if eval_prompts and step == 0 and config.eval_every:
        last_eval = run_eval(0)  # the base model, for the gallery's before/after
    started = time.perf_counter()
    while step < config.max_steps:
        metrics = grpo_step(policy, optimizer, params, ema, reward, prompts, config, step=step, rank=rank,
                            world=world)
        step += 1
        metrics = {"kind": "train", "step": step, "total_steps": config.max_steps, **metrics,
                   "elapsed_s": time.perf_counter() - started}
        history.append(metrics)
        last = step == config.max_steps
        if step % config.log_every == 0 or last:
            emit(metrics)
        if eval_prompts and ((config.eval_every and step % config.eval_every == 0) or last):
            last_eval = run_eval(step)
        if (config.save_every and step % config.save_every == 0) or last:
            rng = gather_rng_states(world)
            if rank == 0 and config.output_dir:
                saved = save_checkpoint(checkpoints, step, policy, optimizer, ema, rng, config, world=world,
                                        metrics={"train": metrics, "eval": strip_images(last_eval)})
                emit({"kind": "checkpoint", "step": step, "path": str(saved)})
            if world > 1:
                dist.barrier()

    saved = saved or (latest_checkpoint(checkpoints) if config.output_dir else None)
    return {"rank": rank, "world_size": world, "step": step, "total_steps": config.max_steps, "history": history,
            "eval": last_eval, "checkpoint": str(saved) if saved else None,
            "lora_sha256": state_digest(policy.lora_state_dict())}


# --- One GRPO step --------------------------------------------------------------------------------------------


def grpo_step(policy: FlowPolicy, optimizer: torch.optim.Optimizer, params: list[torch.nn.Parameter],
              ema: list[torch.Tensor] | None, reward: RewardFn, prompts: Sequence[str], config: GRPOConfig, *,
              step: int, rank: int = 0, world: int = 1) -> dict:
    """Samples, scores and trains on this rank's groups for GRPO step `step` (0-based); returns its metrics."""
    tick = time.perf_counter()
    c, device = config, policy.device
    local = c.prompts_per_step // world
    slots = [rank * local + i for i in range(local)]  # this rank's positions among the step's prompts
    order = prompt_indices(len(prompts), c, step)
    texts = [prompts[order[slot]] for slot in slots]
    G = c.group_size
    n = local * G
    row_of = torch.arange(local).repeat_interleave(G)  # sample -> its prompt (group) row
    cond = policy.encode(texts, max_sequence_length=c.max_sequence_length,
                         negative_prompt=c.negative_prompt if c.cfg_scale > 1 else None)
    size = {"height": c.height, "width": c.width}
    guide = {"guidance": c.guidance, "cfg_scale": c.cfg_scale}

    # 1. Sample every image of every group with the SDE (no gradients), each from its own generator.
    nfe_before = policy.nfe
    parts = []
    for start in range(0, n, c.sample_batch_size):
        index = list(range(start, min(n, start + c.sample_batch_size)))
        generators = seeded_generators([sample_seed(c.seed, step, slots[i // G], i % G) for i in index], device)
        parts.append(sample(policy, cond.take(row_of[index]), generators, steps=c.sample_steps,
                            noise_level=c.noise_level, **size, **guide))
    sampling_nfe = policy.nfe - nfe_before
    latents = torch.cat([part.latents for part in parts])  # (n, steps + 1, ...)
    old_log_probs = torch.cat([part.log_probs for part in parts])  # (n, steps)
    sigmas = parts[0].sigmas

    # 2. Score; advantages per group with top-k filtering.
    images = []
    for start in range(0, n, c.sample_batch_size):
        images += policy.decode(latents[start:start + c.sample_batch_size, -1], **size)
    rewards = reward([texts[i // G] for i in range(n)], images).float().reshape(local, G)
    adv = group_advantages(rewards, k=c.top_k, stats=c.stats, eps=c.std_eps, clip=c.adv_clip)
    advantages = adv.values.reshape(-1).to(device)
    kept = adv.kept.reshape(-1).nonzero().squeeze(1)

    # 3. Train on the kept samples only, on train_timesteps of their steps (a seeded subset per sample).
    timestep_gen = torch.Generator().manual_seed(sample_seed(c.seed, step, -1 - rank, 0))
    trained = torch.stack([torch.randperm(c.sample_steps, generator=timestep_gen)[:c.train_timesteps].sort().values
                           for _ in range(n)])  # (n, train_timesteps)
    sigma_max = float(sigmas[1])
    train_nfe = ref_nfe = 0
    sums = {"loss": 0.0, "policy_loss": 0.0, "kl": 0.0, "clip_fraction": 0.0, "ratio_dev": 0.0, "terms": 0.0}
    grad_norms, lrs = [], []
    policy.transformer.train()
    for chunk in kept.tensor_split(c.updates_per_step):
        if len(chunk) == 0:
            continue
        terms = len(chunk) * c.train_timesteps
        for batch in chunk.split(c.train_batch_size):
            batch_cond = cond.take(row_of[batch])
            for j in range(c.train_timesteps):
                ts = trained[batch, j]
                x_t, x_next = latents[batch, ts], latents[batch, ts + 1]
                t, t_next = sigmas[ts].to(device), sigmas[ts + 1].to(device)
                before = policy.nfe
                v = policy.velocity(x_t, t, batch_cond, **size, **guide)
                train_nfe += policy.nfe - before
                step_ = sde_step(x_t, v, t, t_next, noise_level=c.noise_level, sigma_max=sigma_max, prev_sample=x_next)
                kl = None
                if c.beta > 0:
                    before = policy.nfe
                    with torch.no_grad(), policy.reference():
                        v_ref = policy.velocity(x_t, t, batch_cond, **size, **guide)
                    ref_nfe += policy.nfe - before
                    ref_mean = sde_step(x_t, v_ref, t, t_next, noise_level=c.noise_level, sigma_max=sigma_max,
                                        prev_sample=x_next).mean
                    kl = gaussian_kl(step_.mean, ref_mean, step_.std)
                out = grpo_loss(step_.log_prob, old_log_probs[batch, ts].to(device), advantages[batch],
                                clip_range=c.clip_range, beta=c.beta, kl=kl)
                (out.loss * len(batch) / terms).backward()
                weight = float(len(batch))
                sums["loss"] += out.loss.item() * weight
                sums["policy_loss"] += out.policy_loss.item() * weight
                sums["kl"] += out.kl.item() * weight
                sums["clip_fraction"] += out.clip_fraction.item() * weight
                sums["ratio_dev"] += (out.ratio - 1).abs().mean().item() * weight
                sums["terms"] += weight
        if world > 1:  # DDP's gradient all-reduce: the mean over processes
            for param in params:
                if param.grad is not None:
                    dist.all_reduce(param.grad)
                    param.grad /= world
        if c.max_grad_norm > 0:
            grad_norms.append(torch.nn.utils.clip_grad_norm_(params, c.max_grad_norm).item())
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            with torch.no_grad():
                for average, param in zip(ema, params, strict=True):
                    average.lerp_(param.detach(), 1 - c.ema_decay)
    policy.transformer.eval()

    all_rewards = gather_tensor(rewards.to(device), world)
    totals = dict(zip(sums, all_sum(list(sums.values()), world, device), strict=True))
    count = max(totals.pop("terms"), 1.0)
    return {
        "reward_mean": all_rewards.mean().item(),
        "reward_std": all_rewards.std(unbiased=False).item(),
        "kept_reward_mean": (rewards[adv.kept].mean().item()),
        **{key: value / count for key, value in totals.items()},
        "lr": lrs[-1] if lrs else optimizer.param_groups[0]["lr"],
        "grad_norm": max(grad_norms) if grad_norms else None,
        "optimizer_steps": len(lrs),
        "kept_per_prompt": int(adv.kept.sum().item()) // local,
        # Function evaluations per prompt (each is one transformer pass for one image; CFG counts two).
        "nfe_sampling_per_prompt": sampling_nfe // local,
        "nfe_train_per_prompt": train_nfe // local,
        "nfe_reference_per_prompt": ref_nfe // local,
        "nfe_step": (sampling_nfe + train_nfe + ref_nfe) * world,
        "step_s": time.perf_counter() - tick,
    }


def sample_seed(seed: int, step: int, slot: int, index: int) -> int:
    """The seed of image `index` of the group at position `slot` of GRPO step `step`."""
    return (((seed * 1_000_003 + step) * 1_009 + slot) * 1_013 + index) % (2**63 - 1)


def prompt_indices(n_prompts: int, config: GRPOConfig, step: int) -> list[int]:
    """The prompts (indices) of step `step`: consecutive slices of a seeded permutation per pass over the prompts."""
    if n_prompts == 0:
        raise ValueError("no training prompts")
    out = []
    for slot in range(config.prompts_per_step):
        position = step * config.prompts_per_step + slot
        epoch, offset = divmod(position, n_prompts)
        order = torch.randperm(n_prompts, generator=torch.Generator().manual_seed(config.seed * 7919 + epoch))
        out.append(int(order[offset]))
    return out


def gather_tensor(tensor: torch.Tensor, world: int) -> torch.Tensor:
    if world == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world)]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


# --- Evaluation -----------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(policy: FlowPolicy, prompts: Sequence[str], config: GRPOConfig, reward: RewardFn, *, rank: int = 0,
             world: int = 1, ema: list[torch.Tensor] | None = None,
             params: list[torch.nn.Parameter] | None = None) -> dict:
    """Deterministic ODE sampling (eval_steps steps) of eval_seeds images per prompt with the fixed seeds
    eval_seed_base + j, scored by `reward`; the images are shared out between ranks and gathered back. With EMA the
    averaged weights are evaluated. Returns the mean reward, every reward, and the images in (prompt, seed) order."""
    c = config
    items = [(i, c.eval_seed_base + j) for i in range(len(prompts)) for j in range(c.eval_seeds)]
    mine = items[rank::world]
    backup = None
    if ema is not None and params is not None:
        backup = [param.detach().clone() for param in params]
        for param, average in zip(params, ema, strict=True):
            param.data.copy_(average)
    results = []
    try:
        for start in range(0, len(mine), c.sample_batch_size):
            batch = mine[start:start + c.sample_batch_size]
            texts = [prompts[i] for i, _ in batch]
            cond = policy.encode(texts, max_sequence_length=c.max_sequence_length,
                                 negative_prompt=c.negative_prompt if c.cfg_scale > 1 else None)
            nfe = policy.nfe
            trajectory = sample(policy, cond, seeded_generators([seed for _, seed in batch], policy.device),
                                steps=c.eval_steps, noise_level=0.0, height=c.height, width=c.width,
                                guidance=c.guidance, cfg_scale=c.cfg_scale)
            policy.nfe = nfe  # evaluation is not part of the training accounting
            images = policy.decode(trajectory.latents[:, -1], c.height, c.width)
            scores = reward(texts, images).float().tolist()
            results += [(i, seed, score, image) for (i, seed), score, image in zip(batch, scores, images, strict=True)]
    finally:
        if backup is not None:
            for param, value in zip(params, backup, strict=True):
                param.data.copy_(value)
    if world > 1:
        gathered: list = [None] * world
        dist.all_gather_object(gathered, results)
        results = [item for part in gathered for item in part]
    results.sort(key=lambda item: (item[0], item[1]))
    rewards = torch.tensor([item[2] for item in results], dtype=torch.float64)
    return {"reward_mean": rewards.mean().item() if len(rewards) else None,
            "reward_std": rewards.std(unbiased=False).item() if len(rewards) else None,
            "rewards": rewards.tolist(), "prompt_index": [item[0] for item in results],
            "prompts": [prompts[item[0]] for item in results], "seeds": [item[1] for item in results],
            "images": [item[3] for item in results]}


def strip_images(event: dict | None) -> dict | None:
    return None if event is None else {key: value for key, value in event.items() if key != "images"}


# --- Prompts, checkpoints -------------------------------------------------------------------------------------


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per line of a text file, or the 'prompt' field of each line of a .jsonl file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompts: no prompt file at {str(path)!r}.")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if path.suffix == ".jsonl":
        return [json.loads(line)["prompt"] for line in lines]
    return lines


def save_checkpoint(root: Path, step: int, policy: FlowPolicy, optimizer, ema, rng_states: list[dict],
                    config: GRPOConfig, *, world: int, metrics: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-*"):  # left by a crash mid-write
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}-{os.getpid()}"
    tmp.mkdir()
    policy.save_lora(tmp)
    state = {"step": step, "world_size": world, "optimizer": optimizer.state_dict(), "rng": rng_states,
             "ema": [tensor.cpu() for tensor in ema] if ema is not None else None, "config": to_dict(config),
             "metrics": metrics or {}}
    if ema is not None:  # the averaged weights in the loadable format too
        lora_keys = list(policy.lora_state_dict())
        policy.save_lora(tmp / "ema", dict(zip(lora_keys, state["ema"], strict=True)))
    torch.save(state, tmp / STATE_NAME)
    (tmp / "metrics.json").write_text(json.dumps(metrics or {}, default=str))
    for path in [*tmp.rglob("*"), tmp]:
        fsync_path(path)
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


def load_lora_file(path: Path) -> dict[str, torch.Tensor]:
    """The peft state dict back from a pytorch_lora_weights.safetensors (its keys carry a 'transformer.' prefix)."""
    from safetensors.torch import load_file

    return {key.removeprefix("transformer."): value for key, value in load_file(path).items()
            if key.startswith("transformer.")}


def load_checkpoint(path: Path, policy: FlowPolicy, optimizer, ema, *, rank: int, world: int) -> int:
    policy.load_lora_state_dict(load_lora_file(path / LORA_NAME))
    # Our own file, holding Python and NumPy RNG states besides tensors: not loadable with weights_only.
    state = torch.load(path / STATE_NAME, map_location="cpu", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    if ema is not None and state.get("ema") is not None:
        for average, saved in zip(ema, state["ema"], strict=True):
            average.copy_(saved)
    if len(state["rng"]) == world:
        set_rng_state(state["rng"][rank])
    return int(state["step"])


# --- CLI ------------------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ml.grpo.train",
        description="Flow-GRPO with top-k filtering: LoRA fine-tuning of a Flux / SD3 pipeline against a reward "
                    "(a SpatialScore checkpoint or a registered function). Under torchrun, one process per GPU (or "
                    "CPU process, gloo). Prints one JSON line per metrics event (rank 0; evaluation images are "
                    "written under output_dir/eval) and a final JSON summary line per rank.")
    add_arguments(parser, GRPOConfig, "grpo")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    config = from_arguments(GRPOConfig, args)
    if not config.pretrained or not config.prompts or not config.output_dir:
        parser().error("--pretrained, --prompts and --output-dir are required")

    def report(metrics: dict) -> None:
        sys.stdout.write(json.dumps(strip_images(metrics)) + "\n")
        sys.stdout.flush()

    summary = train(config, on_metrics=report)
    final = {key: value for key, value in summary.items() if key != "history"}
    final["eval"] = strip_images(final["eval"])
    sys.stdout.write(json.dumps({"summary": final}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
