"""Wall time per GRPO step with the paper's top-k filtering (k = 6 of G = 24) against no filtering (k = G / 2),
and the function evaluations (NFE) both count, on a random pipeline built from a config.

    python benchmarks/grpo.py                          # tiny Flux on CPU, 64 px (what docs/grpo.md reports)
    python benchmarks/grpo.py --device cuda --size flux-size --px 512 --dtype bfloat16   # FLUX.1-size transformer

The flux-size mode (FLUX.1-dev's transformer shape, random weights, about 24 GB in bf16, with peak GPU memory
reported) needs a large GPU and has not been run here."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ml.generation.tiny import build_tiny_flux  # noqa: E402
from ml.grpo.config import GRPOConfig  # noqa: E402
from ml.grpo.train import train  # noqa: E402

PROMPTS = ["a red cube left of a blue ball", "a cat above a table, a lamp behind the sofa"]


def run(folder: Path, prompts: Path, args: argparse.Namespace, top_k: int) -> dict:
    config = GRPOConfig(pretrained=str(folder), prompts=str(prompts), reward="brightness-left-right",
                        group_size=24, top_k=top_k, prompts_per_step=1, sample_steps=6, height=args.px, width=args.px,
                        max_sequence_length=args.max_sequence_length, sample_batch_size=args.batch,
                        train_batch_size=args.batch, lora_rank=32, lora_alpha=64.0, max_steps=args.steps + 1,
                        eval_every=0, save_every=0, device=args.device, dtype=args.dtype)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    history = train(config)["history"]
    times = [h["step_s"] for h in history[1:]]  # the first step warms up
    last = history[-1]
    return {"top_k": top_k, "step_s": statistics.median(times), "sampling": last["nfe_sampling_per_prompt"],
            "train": last["nfe_train_per_prompt"], "reference": last["nfe_reference_per_prompt"],
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if args.device.startswith("cuda") else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="tiny", choices=("tiny", "small", "flux-size"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--px", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed GRPO steps per setting (after one warm-up)")
    parser.add_argument("--batch", type=int, default=24, help="images per transformer pass")
    parser.add_argument("--max-sequence-length", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_tiny_flux(Path(tmp) / "flux", size=args.size)
        prompts = Path(tmp) / "prompts.txt"
        prompts.write_text("\n".join(PROMPTS) + "\n")
        rows = [run(folder, prompts, args, top_k) for top_k in (6, 12)]
    print(f"GRPO step, G = 24, 6 sampling steps, 1 prompt, {args.size} Flux at {args.px} px on {args.device} "
          f"({args.threads} thread(s)), median of {args.steps} steps")
    print(f"{'filter':<18} {'s/step':>8} {'NFE sample':>11} {'NFE train':>10} {'NFE ref':>8} {'peak GiB':>9}")
    for row in rows:
        name = "top-k 6 of 24" if row["top_k"] == 6 else "none (k = 12)"
        peak = f"{row['peak_gib']:.1f}" if row["peak_gib"] is not None else "-"
        print(f"{name:<18} {row['step_s']:>8.3f} {row['sampling']:>11} {row['train']:>10} {row['reference']:>8} "
              f"{peak:>9}")
    print(f"speed-up of the step: {rows[1]['step_s'] / rows[0]['step_s']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
