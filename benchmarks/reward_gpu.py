"""GPU benchmark of SpatialScore training at the paper's scale: a Qwen2.5-VL-7B-shaped backbone (the real
dimensions, 8.3 B parameters, random weights) in bf16 on one GPU, LoRA, the reward token and the head, and a few
full training steps: forward of winners + losers, Bradley-Terry loss, backward, AdamW step, with gradient
checkpointing. Prints the peak memory (torch.cuda.max_memory_allocated) and the throughput after warm-up, then one
line of JSON with the figures.

    python benchmarks/reward_gpu.py                    # one GPU (an H200 takes about 2 minutes, construction included)
    python benchmarks/reward_gpu.py --pairs 16 --no-gradient-checkpointing
    python benchmarks/reward_gpu.py --tiny             # the same code on CPU with the tiny backbone (a smoke test)

The model is built directly on the GPU (torch.device("cuda") as the default device, dtype bfloat16): no CPU copy
of the 8 B parameters is ever made. The batch is built once (the image processor on the CPU, timed separately as
inputs_s) and reused, so the figure is the model's throughput; in training, DataLoader workers build batches
while the GPU computes.

Text length: the random backbone has no real vocabulary (none can be downloaded), so prompts are tokenized by the
byte-level tokenizer of ml.reward.tiny, which gives about five tokens per word where Qwen's BPE gives about 1.3.
The ~60-word prompts (the paper's peak) are therefore cut to round(1.3 x words) characters, so that each sequence
has the length it would have with the real tokenizer (chat template + 256 visual tokens at 448x448 + ~80 text
tokens). --no-real-length keeps the whole byte-level prompt (a pessimistic, longer sequence).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOKENS_PER_WORD = 1.3  # Qwen2.5's BPE on English prose


def prompts(count: int, words: int, real_length: bool) -> list[str]:
    from ml.spatial.generator import generate_prompt

    texts = []
    for seed in range(count):
        text = generate_prompt(seed=seed, n_objects=5, n_relations=7, style="long").text
        text = " ".join((text.split() * 4)[:words])  # exactly `words` words
        texts.append(text[: round(TOKENS_PER_WORD * words)] if real_length else text)
    return texts


def images(count: int, size: int, seed: int = 0):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="Tiny backbone on CPU (tests the script without a GPU).")
    parser.add_argument("--pairs", type=int, default=None, help="Preference pairs per step (default 8; tiny: 2).")
    parser.add_argument("--image-size", type=int, default=None, help="Square image side in px (default 448; tiny: 56).")
    parser.add_argument("--words", type=int, default=60, help="Prompt length in words.")
    parser.add_argument("--real-length", action=argparse.BooleanOptionalAction, default=True,
                        help="Cut prompts to the token count Qwen's real tokenizer would give (see above).")
    parser.add_argument("--lora-rank", type=int, default=64, help="LoRA rank (alpha = 2 x rank).")
    parser.add_argument("--steps", type=int, default=6, help="Training steps in all, warm-up included.")
    parser.add_argument("--warmup", type=int, default=2, help="Steps not timed (allocator, kernels' autotuning).")
    parser.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args(argv)
    if args.steps <= args.warmup:
        parser.error("--steps must exceed --warmup")

    started = time.perf_counter()
    import torch

    from ml.reward.config import ModelConfig
    from ml.reward.losses import bradley_terry_loss
    from ml.reward.model import SpatialScore, autocast, to_device
    from ml.reward.tiny import build_backbone_on_device

    if args.tiny:
        # Tensors this small gain nothing from threads, and threads spinning on a shared 2-core machine made
        # each step 20 times slower (1.7 s instead of 0.09 s).
        torch.set_num_threads(1)
        device, dtype, size = torch.device("cpu"), torch.float32, "tiny"
        pairs, side = args.pairs or 2, args.image_size or 56
    else:
        if not torch.cuda.is_available():
            parser.error("no CUDA device: use --tiny on a machine without a GPU")
        device, dtype, size = torch.device("cuda"), torch.bfloat16, "7b"
        pairs, side = args.pairs or 8, args.image_size or 448
    imported_s = time.perf_counter() - started

    # --- The model, built on the device. -------------------------------------------------------------------
    tick = time.perf_counter()
    torch.manual_seed(0)
    backbone, tokenizer, image_processor = build_backbone_on_device(size, device=device, dtype=dtype)
    config = ModelConfig(backbone=f"(random {size})", lora_rank=args.lora_rank, lora_alpha=2.0 * args.lora_rank,
                         min_pixels=side * side, max_pixels=side * side)
    model = SpatialScore(backbone, tokenizer, image_processor, config).to(device)
    if args.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    model.train()
    if device.type == "cuda":
        torch.cuda.synchronize()
    build_s = time.perf_counter() - tick
    total_params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for _, p in model.trainable_parameters())

    # --- One batch: winners then losers, the same prompts. ------------------------------------------------------
    tick = time.perf_counter()
    texts = prompts(pairs, args.words, args.real_length)
    batch = model.inputs(texts + texts, images(2 * pairs, side))
    inputs_s = time.perf_counter() - tick
    batch = to_device(batch, device)
    seq_len = int(batch["input_ids"].shape[1])
    visual_tokens = int((batch["input_ids"][0] == model.inputs.image_token_id).sum())

    params = [p for _, p in model.trainable_parameters()]
    optimizer = torch.optim.AdamW(params, lr=2e-6, weight_decay=0.0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()

    step_times, losses = [], []
    for step in range(args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        tick = time.perf_counter()
        with autocast(device):
            out = model(**batch)
        loss = bradley_terry_loss(out.mu[:pairs], out.mu[pairs:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())  # synchronises
        if device.type == "cuda":
            torch.cuda.synchronize()
        step_times.append(time.perf_counter() - tick)
        print(f"step {step + 1}/{args.steps}: loss {losses[-1]:.4f}, {step_times[-1]:.3f} s"
              f"{' (warm-up)' if step < args.warmup else ''}", flush=True)

    timed = step_times[args.warmup:]
    step_s = sum(timed) / len(timed)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    figures = {
        "benchmark": "reward_gpu", "size": size, "device": torch.cuda.get_device_name() if device.type == "cuda" else
        platform.processor() or "cpu", "dtype": str(dtype).removeprefix("torch."),
        "params_b": round(total_params / 1e9, 3), "trainable_m": round(trainable / 1e6, 2),
        "lora_rank": args.lora_rank, "gradient_checkpointing": args.gradient_checkpointing,
        "pairs_per_step": pairs, "sequences_per_step": 2 * pairs, "image_px": side, "visual_tokens": visual_tokens,
        "seq_len": seq_len, "prompt_words": args.words, "real_length": args.real_length,
        "step_s": round(step_s, 4), "pairs_per_s": round(pairs / step_s, 3),
        "samples_per_s": round(2 * pairs / step_s, 3), "peak_memory_gib": round(peak, 2) if peak else None,
        "build_s": round(build_s, 1), "import_s": round(imported_s, 1), "inputs_s": round(inputs_s, 3),
        "total_s": round(time.perf_counter() - started, 1), "losses": [round(x, 5) for x in losses],
        "torch": torch.__version__,
    }
    print(f"\n{size} backbone ({figures['params_b']} B params, {figures['trainable_m']} M trainable) on "
          f"{figures['device']}: {pairs} pairs x {seq_len} tokens per step, {step_s:.3f} s/step, "
          f"{figures['pairs_per_s']} pairs/s ({figures['samples_per_s']} samples/s), peak memory "
          f"{figures['peak_memory_gib']} GiB; built in {build_s:.1f} s, {figures['total_s']} s in all")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
