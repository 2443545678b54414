"""Inter-annotator agreement, vectorised with numpy (no Python loops over ratings).

The verification dashboard reads (item, annotator, answer) rows from PostgreSQL in one query, turns them into a
`Ratings` (three parallel integer arrays: one entry per rating, so memory grows with the number of verdicts,
not with items x annotators) and computes:

- `percent_agreement`: the share of agreeing pairs of ratings of an item, averaged over items rated twice or more;
- `fleiss_kappa`: Fleiss' kappa; items with different numbers of ratings (missing ratings) use Fleiss' per-item
  formula; equal to statsmodels' `fleiss_kappa` when every item has the same number of ratings;
- `krippendorff_alpha`: Krippendorff's alpha for nominal data from the coincidence matrix (missing ratings
  handled as the `krippendorff` package does);
- `cohen_kappa_matrix`: Cohen's kappa of every pair of annotators over the items both rated (scikit-learn's
  `cohen_kappa_score` for each pair), from the pairs of ratings within each item.

Conventions: categories are codes 0..K-1. A statistic that is undefined (no item rated twice, one category only
so that chance agreement is 1, two annotators sharing no item) is NaN, never an exception; a dashboard shows
"–". The diagonal of the Cohen matrix is NaN: an annotator is not compared with themself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

MISSING = -1  # in a dense (items x annotators) matrix: not rated


@dataclass(frozen=True)
class Ratings:
    """One entry per rating: item index, annotator index, category code; plus the sizes and labels."""

    item: np.ndarray
    rater: np.ndarray
    code: np.ndarray
    n_items: int
    n_raters: int
    n_categories: int
    item_labels: np.ndarray | None = None
    rater_labels: np.ndarray | None = None
    category_labels: np.ndarray | None = None

    @classmethod
    def from_matrix(cls, matrix, n_categories: int | None = None) -> Ratings:
        """From a dense (items x annotators) matrix of codes, MISSING where not rated."""
        matrix = np.asarray(matrix, dtype=np.int64)
        item, rater = np.nonzero(matrix != MISSING)
        k = n_categories if n_categories is not None else int(matrix.max(initial=MISSING)) + 1
        return cls(item, rater, matrix[item, rater], matrix.shape[0], matrix.shape[1], max(k, 0))

    @classmethod
    def from_rows(cls, rows: Iterable[tuple], categories: Sequence | None = None) -> Ratings:
        """From (item, annotator, answer) rows, one per rating. `categories` fixes the codes' order (a category
        nobody chose still counts); by default the answers seen, sorted."""
        data = list(rows)
        if not data:
            empty = np.empty(0, dtype=np.int64)
            return cls(empty, empty, empty, 0, 0, len(categories or ()), category_labels=np.asarray(categories or []))
        items, raters, answers = (np.asarray(column) for column in zip(*data, strict=True))
        item_labels, item = np.unique(items, return_inverse=True)
        rater_labels, rater = np.unique(raters, return_inverse=True)
        if categories is None:
            category_labels, code = np.unique(answers, return_inverse=True)
        else:
            category_labels = np.asarray(categories)
            lookup = {value: index for index, value in enumerate(category_labels.tolist())}
            unknown = sorted({a for a in answers.tolist() if a not in lookup}, key=str)
            if unknown:
                raise ValueError(f"answers {unknown} are not among the categories {category_labels.tolist()}")
            code = np.fromiter((lookup[a] for a in answers.tolist()), dtype=np.int64, count=len(answers))
        return cls(item, rater, code, len(item_labels), len(rater_labels), len(category_labels), item_labels,
                   rater_labels, category_labels)

    @classmethod
    def from_arrays(cls, items, raters, codes, categories: Sequence) -> Ratings:
        """From parallel arrays of item ids, annotator ids and category codes (0..len(categories)-1), as a
        database query returns them: vectorised, for a million verdicts."""
        items, raters, codes = (np.asarray(column, dtype=np.int64) for column in (items, raters, codes))
        item_labels, item = np.unique(items, return_inverse=True)
        rater_labels, rater = np.unique(raters, return_inverse=True)
        return cls(item.reshape(-1), rater.reshape(-1), codes, len(item_labels), len(rater_labels), len(categories),
                   item_labels, rater_labels, np.asarray(categories))

    def counts(self) -> np.ndarray:
        """(items, categories): how many annotators chose each category for each item."""
        counts = np.zeros((self.n_items, self.n_categories), dtype=np.int64)
        np.add.at(counts, (self.item, self.code), 1)
        return counts


def _pairable(ratings: Ratings) -> tuple[np.ndarray, np.ndarray]:
    """Category counts and rating counts of the items rated at least twice."""
    counts = ratings.counts()
    n = counts.sum(axis=1)
    keep = n >= 2
    return counts[keep].astype(np.float64), n[keep].astype(np.float64)


def percent_agreement(ratings: Ratings) -> float:
    counts, n = _pairable(ratings)
    if not len(n):
        return float("nan")
    return float(np.mean((counts * (counts - 1)).sum(axis=1) / (n * (n - 1))))


def fleiss_kappa(ratings: Ratings) -> float:
    counts, n = _pairable(ratings)
    if not len(n):
        return float("nan")
    observed = np.mean((counts * (counts - 1)).sum(axis=1) / (n * (n - 1)))
    shares = counts.sum(axis=0) / n.sum()
    expected = float((shares**2).sum())
    return float((observed - expected) / (1.0 - expected)) if not np.isclose(expected, 1.0) else float("nan")


def krippendorff_alpha(ratings: Ratings) -> float:
    """Nominal alpha = 1 - D_o / D_e over the pairable ratings (items rated at least twice)."""
    counts, m = _pairable(ratings)
    if not len(m):
        return float("nan")
    weighted = counts / (m - 1.0)[:, None]
    # Coincidences o_ck = sum over items of n_uc * n_uk / (m_u - 1), without pairing a rating with itself.
    coincidences = weighted.T @ counts - np.diag(weighted.sum(axis=0))
    totals = coincidences.sum(axis=0)
    n = totals.sum()
    disagreement_observed = (n - np.trace(coincidences)) / n
    disagreement_expected = (n * n - (totals**2).sum()) / (n * (n - 1.0))
    if np.isclose(disagreement_expected, 0.0):
        return float("nan")
    return float(1.0 - disagreement_observed / disagreement_expected)


def _rating_pairs(ratings: Ratings) -> tuple[np.ndarray, np.ndarray]:
    """Indexes (a, b) of every ordered pair of ratings of the same item, a rating paired with itself included."""
    order = np.argsort(ratings.item, kind="stable")
    item = ratings.item[order]
    sizes = np.bincount(item, minlength=ratings.n_items)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    per_rating = sizes[item]  # how many partners each rating has (its item's size)
    a = np.repeat(np.arange(len(item)), per_rating)
    offsets = np.arange(per_rating.sum()) - np.repeat(np.cumsum(per_rating) - per_rating, per_rating)
    b = starts[item][a] + offsets
    return order[a], order[b]


def cohen_kappa_matrix(ratings: Ratings) -> tuple[np.ndarray, np.ndarray]:
    """(kappa, shared): Cohen's kappa of every pair of annotators over the items both rated, and how many
    items each pair shares."""
    r, k = ratings.n_raters, ratings.n_categories
    a, b = _rating_pairs(ratings)
    joint = np.zeros((r, r, k, k), dtype=np.float64)  # confusion matrix of each pair of annotators
    np.add.at(joint, (ratings.rater[a], ratings.rater[b], ratings.code[a], ratings.code[b]), 1.0)
    shared = joint.sum(axis=(2, 3))
    observed = np.trace(joint, axis1=2, axis2=3)
    first, second = joint.sum(axis=3), joint.sum(axis=2)  # each one's answers over the shared items
    with np.errstate(invalid="ignore", divide="ignore"):
        po = observed / shared
        pe = (first * second).sum(axis=2) / shared**2
        kappa = (po - pe) / (1.0 - pe)
    kappa[(shared == 0) | np.isclose(pe, 1.0)] = np.nan
    np.fill_diagonal(kappa, np.nan)
    return kappa, shared.astype(np.int64)
