"""Agreement statistics against reference implementations: scikit-learn's cohen_kappa_score, statsmodels'
fleiss_kappa and the krippendorff package, on random data and on edge cases (one category only, missing
ratings, a single annotator, annotators who share no item)."""

import warnings

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss

from spatiallab.verification.agreement import (
    MISSING,
    Ratings,
    cohen_kappa_matrix,
    fleiss_kappa,
    krippendorff_alpha,
    percent_agreement,
)

SEEDS = range(12)


def random_matrix(seed: int, *, items=60, raters=5, categories=5, missing=0.0, skew=1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Annotators who mostly agree with a hidden truth, so the statistics land well inside (-1, 1).
    truth = rng.integers(0, categories, size=items)
    noise = rng.integers(0, categories, size=(items, raters))
    matrix = np.where(rng.random((items, raters)) < 0.6 * skew, truth[:, None], noise)
    matrix[rng.random((items, raters)) < missing] = MISSING
    return matrix


def reference_alpha(matrix: np.ndarray) -> float:
    data = matrix.T.astype(float)
    data[data == MISSING] = np.nan
    return krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")


@pytest.mark.parametrize("seed", SEEDS)
def test_fleiss_kappa_equals_statsmodels_when_every_item_has_the_same_number_of_ratings(seed):
    matrix = random_matrix(seed, raters=3 + seed % 4, categories=2 + seed % 4)
    ratings = Ratings.from_matrix(matrix)
    assert fleiss_kappa(ratings) == pytest.approx(statsmodels_fleiss(ratings.counts(), method="fleiss"), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("missing", [0.0, 0.3])
def test_krippendorff_alpha_equals_the_krippendorff_package(seed, missing):
    matrix = random_matrix(seed, raters=2 + seed % 5, categories=2 + seed % 4, missing=missing)
    assert krippendorff_alpha(Ratings.from_matrix(matrix)) == pytest.approx(reference_alpha(matrix), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("missing", [0.0, 0.4])
def test_cohen_kappa_matrix_equals_scikit_learn_for_every_pair(seed, missing):
    matrix = random_matrix(seed, items=40, raters=4, categories=2 + seed % 4, missing=missing)
    kappa, shared = cohen_kappa_matrix(Ratings.from_matrix(matrix))
    for a in range(4):
        for b in range(4):
            both = (matrix[:, a] != MISSING) & (matrix[:, b] != MISSING)
            assert shared[a, b] == both.sum()
            if a == b:
                assert np.isnan(kappa[a, b])
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                expected = cohen_kappa_score(matrix[both, a], matrix[both, b])
            if np.isnan(expected):
                assert np.isnan(kappa[a, b])
            else:
                assert kappa[a, b] == pytest.approx(expected, abs=1e-12)
    assert np.allclose(kappa, kappa.T, equal_nan=True)


@pytest.mark.parametrize("seed", SEEDS)
def test_percent_agreement_is_the_share_of_agreeing_rating_pairs(seed):
    matrix = random_matrix(seed, items=30, raters=4, missing=0.2)
    shares = []
    for row in matrix:
        rated = row[row != MISSING]
        if len(rated) >= 2:
            pairs = [(x, y) for i, x in enumerate(rated) for j, y in enumerate(rated) if i != j]
            shares.append(np.mean([x == y for x, y in pairs]))
    assert percent_agreement(Ratings.from_matrix(matrix)) == pytest.approx(np.mean(shares), abs=1e-12)


def test_perfect_agreement_and_systematic_disagreement():
    same = np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2], [1, 1, 1]])
    ratings = Ratings.from_matrix(same)
    assert percent_agreement(ratings) == 1.0 and fleiss_kappa(ratings) == pytest.approx(1.0)
    assert krippendorff_alpha(ratings) == pytest.approx(1.0)
    kappa, _ = cohen_kappa_matrix(ratings)
    assert np.allclose(kappa[~np.eye(3, dtype=bool)], 1.0)
    opposite = np.array([[0, 1], [1, 0], [0, 1], [1, 0]])
    kappa, _ = cohen_kappa_matrix(Ratings.from_matrix(opposite))
    assert kappa[0, 1] == pytest.approx(cohen_kappa_score(opposite[:, 0], opposite[:, 1])) == pytest.approx(-1.0)
    assert krippendorff_alpha(Ratings.from_matrix(opposite)) == pytest.approx(reference_alpha(opposite))


def test_one_category_only_is_undefined_not_an_error():
    ratings = Ratings.from_matrix(np.zeros((5, 3), dtype=int))
    assert percent_agreement(ratings) == 1.0
    assert np.isnan(fleiss_kappa(ratings)) and np.isnan(krippendorff_alpha(ratings))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the references warn that the statistic is undefined
        assert np.isnan(statsmodels_fleiss(ratings.counts(), method="fleiss"))
        assert np.isnan(cohen_kappa_score([0] * 5, [0] * 5))
    with pytest.raises(ValueError):  # the package refuses a one-value domain; we answer NaN
        reference_alpha(np.zeros((5, 3), dtype=int))
    assert np.isnan(cohen_kappa_matrix(ratings)[0]).all()


def test_a_single_annotator_or_no_shared_items_give_nan():
    single = Ratings.from_matrix(np.array([[0], [1], [2]]))
    assert np.isnan(percent_agreement(single)) and np.isnan(fleiss_kappa(single))
    assert np.isnan(krippendorff_alpha(single))
    kappa, shared = cohen_kappa_matrix(single)
    assert kappa.shape == (1, 1) and np.isnan(kappa[0, 0]) and shared[0, 0] == 3
    apart = np.array([[0, MISSING], [1, MISSING], [MISSING, 0], [MISSING, 1]])
    kappa, shared = cohen_kappa_matrix(Ratings.from_matrix(apart))
    assert shared[0, 1] == 0 and np.isnan(kappa[0, 1])
    assert np.isnan(krippendorff_alpha(Ratings.from_matrix(apart)))


def test_ratings_from_database_rows_with_fixed_categories():
    rows = [(10, "ann", "left"), (10, "bob", "left"), (11, "ann", "both"), (11, "bob", "neither"),
            (12, "bob", "left"), (12, "cy", "left")]
    categories = ["left", "right", "both", "neither", "cant_tell"]
    ratings = Ratings.from_rows(rows, categories=categories)
    assert (ratings.n_items, ratings.n_raters, ratings.n_categories) == (3, 3, 5)
    assert ratings.counts().tolist() == [[2, 0, 0, 0, 0], [0, 0, 1, 1, 0], [2, 0, 0, 0, 0]]
    assert list(ratings.rater_labels) == ["ann", "bob", "cy"]
    assert percent_agreement(ratings) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="sideways"):
        Ratings.from_rows([(1, "ann", "sideways")], categories=categories)
    empty = Ratings.from_rows([], categories=categories)
    assert np.isnan(fleiss_kappa(empty)) and cohen_kappa_matrix(empty)[0].shape == (0, 0)
