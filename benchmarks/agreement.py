"""Benchmark of the agreement statistics kernel (issue 5: statistics over 1,000,000 verdicts in under 5 s).

    python benchmarks/agreement.py [--verdicts 1000000] [--annotators 64] [--overlap 3]

Synthetic verdicts: items with `overlap` verdicts each from distinct annotators out of `annotators`, five answer
categories, annotators who mostly agree. Times the numpy kernel only (spatiallab.verification.agreement), from
the three arrays a database query returns; the query itself is not part of this figure yet.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]

from spatiallab.verification.agreement import (  # noqa: E402
    Ratings,
    cohen_kappa_matrix,
    fleiss_kappa,
    krippendorff_alpha,
    percent_agreement,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--verdicts", type=int, default=1_000_000)
    parser.add_argument("--annotators", type=int, default=64)
    parser.add_argument("--overlap", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n_items = args.verdicts // args.overlap
    # Distinct annotators per item: a random offset and stride modulo the annotator count.
    start = rng.integers(0, args.annotators, size=n_items)
    raters = (start[:, None] + np.arange(args.overlap)[None, :] * 7) % args.annotators
    truth = rng.integers(0, 5, size=n_items)
    codes = np.where(rng.random((n_items, args.overlap)) < 0.7, truth[:, None], rng.integers(0, 5, (n_items, 3)))
    ratings = Ratings(np.repeat(np.arange(n_items), args.overlap), raters.ravel(), codes.ravel(), n_items,
                      args.annotators, 5)
    print(f"{len(ratings.item):,} verdicts, {n_items:,} items, {args.annotators} annotators, overlap {args.overlap}")
    total = 0.0
    for name, statistic in [("percent agreement", percent_agreement), ("Fleiss' kappa", fleiss_kappa),
                            ("Krippendorff's alpha", krippendorff_alpha), ("Cohen's kappa matrix", cohen_kappa_matrix)]:
        start_time = time.perf_counter()
        value = statistic(ratings)
        elapsed = time.perf_counter() - start_time
        total += elapsed
        shown = f"{value:.4f}" if isinstance(value, float) else f"{np.nanmean(value[0]):.4f} (mean of the matrix)"
        print(f"{name:<22} {shown:<28} {elapsed:6.3f} s")
    print(f"all four: {total:.2f} s (goal for the whole statistics page: under 5 s, query included)")


if __name__ == "__main__":
    main()
