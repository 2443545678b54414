"""Pairwise accuracy of a reward-model checkpoint on a split of a pair export, broken down like the paper's
Table 1 (pairs with 1 edit / 2-3 edits / overall) and by relation type, each with a 95 % Wilson interval.

    python -m ml.reward.evaluate --checkpoint runs/rm1/checkpoints/step-00001000 --data pairs.parquet --split test

A pair is correct when the winner's score (mu) is higher than the loser's; a tie counts half. A pair whose edits
touch several relation types counts once under each of them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def wilson_interval(correct: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion correct / n (better than the normal one near 0 and 1, small n)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def _cell(correct: float, n: int) -> dict:
    low, high = wilson_interval(correct, n)
    return {"accuracy": correct / n if n else float("nan"), "correct": correct, "n": n, "ci95": [low, high]}


def edits_bucket(n_edits: int) -> str:
    return "1 edit" if n_edits <= 1 else "2-3 edits" if n_edits <= 3 else "4+ edits"


def pairwise_report(results: Iterable[tuple[int, list[str], float, float]]) -> dict:
    """From (n_edits, relation kinds, winner score, loser score) per pair: accuracy overall, per edit bucket (the
    paper's '1 perturbation' and '2-3 perturbations') and per relation kind, with 95 % Wilson intervals."""
    overall = [0.0, 0]
    buckets: dict[str, list] = defaultdict(lambda: [0.0, 0])
    kinds: dict[str, list] = defaultdict(lambda: [0.0, 0])
    margins = []
    for n_edits, relation_kinds, winner, loser in results:
        point = 1.0 if winner > loser else 0.5 if winner == loser else 0.0
        margins.append(winner - loser)
        for cell in (overall, buckets[edits_bucket(n_edits)], *(kinds[kind] for kind in set(relation_kinds))):
            cell[0] += point
            cell[1] += 1
    report = {
        "pairs": overall[1],
        "overall": _cell(*overall),
        "1 edit": _cell(*buckets["1 edit"]),
        "2-3 edits": _cell(*buckets["2-3 edits"]),
        "by_relation": {kind: _cell(*kinds[kind]) for kind in sorted(kinds)},
        "mean_margin": sum(margins) / len(margins) if margins else float("nan"),
    }
    if buckets.get("4+ edits"):
        report["4+ edits"] = _cell(*buckets["4+ edits"])
    return report


def evaluate_model(model, data: str | Path, *, split: str = "test", batch_size: int = 8, limit: int = 0,
                   per_pair: bool = False, on_progress=None) -> dict:
    """Scores every pair of `split` with a loaded SpatialScore (eval mode, mu) and reports pairwise accuracy.
    With `per_pair`, the report also lists each pair's scores ({pair_id, winner_mu, winner_log_sigma, loser_mu,
    loser_log_sigma}). `on_progress(done, total)` is called after each batch."""
    import torch

    from ml.reward.data import PairCollator, PreferencePairs
    from ml.reward.model import autocast, to_device

    device = model.device
    was_training = model.training
    model.eval()
    dataset = PreferencePairs(data, split, limit=limit)
    collate = PairCollator(model.inputs)
    results, pairs = [], []
    try:
        with torch.no_grad():
            for start in range(0, len(dataset), batch_size):
                items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
                batch = collate(items)
                n = batch["pairs"]
                with autocast(device):
                    out = model(**to_device(batch["inputs"], device))
                mu, log_sigma = out.mu.float().cpu(), out.log_sigma.float().cpu()
                for i in range(n):
                    results.append((int(batch["n_edits"][i]), batch["relation_kinds"][i], mu[i].item(),
                                    mu[n + i].item()))
                    if per_pair:
                        pairs.append({"pair_id": items[i].pair_id, "winner_mu": mu[i].item(),
                                      "winner_log_sigma": log_sigma[i].item(), "loser_mu": mu[n + i].item(),
                                      "loser_log_sigma": log_sigma[n + i].item()})
                if on_progress:
                    on_progress(min(start + batch_size, len(dataset)), len(dataset))
    finally:
        model.train(was_training)
    report = {"data": str(data), "split": split, **pairwise_report(results)}
    if per_pair:
        report["per_pair"] = pairs
    return report


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path, *, split: str = "test",
                        backbone: str | Path | None = None, batch_size: int = 8, device: str = "auto",
                        limit: int = 0) -> dict:
    """Loads the checkpoint's model and evaluates it (`evaluate_model`)."""
    import torch

    from ml.reward.model import SpatialScore

    device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                          "cpu" if device == "auto" else device)
    model = SpatialScore.from_checkpoint(checkpoint, backbone=backbone, device=device)
    report = evaluate_model(model, data, split=split, batch_size=batch_size, limit=limit)
    return {"checkpoint": str(checkpoint), **report}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.reward.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="A checkpoint folder (checkpoints/step-NNNNNNNN).")
    parser.add_argument("--data", required=True, help="The pair export (Parquet).")
    parser.add_argument("--split", default="test", help="Split to evaluate ('' for every row).")
    parser.add_argument("--backbone", default=None, help="Backbone folder, if not the one the checkpoint names.")
    parser.add_argument("--batch-size", type=int, default=8, help="Pairs per forward pass.")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda.")
    parser.add_argument("--limit", type=int, default=0, help="Evaluate at most this many pairs (0: all).")
    args = parser.parse_args(argv)
    report = evaluate_checkpoint(args.checkpoint, args.data, split=args.split, backbone=args.backbone,
                                 batch_size=args.batch_size, device=args.device, limit=args.limit)
    sys.stdout.write(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
