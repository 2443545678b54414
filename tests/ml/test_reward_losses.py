"""The reward model's losses, accuracy, schedule, data sharding and report statistics, against independent
computations (closed forms, a numeric integral, statsmodels). No backbone needed."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ml.reward.config import TrainConfig  # noqa: E402
from ml.reward.data import shard_batches  # noqa: E402
from ml.reward.evaluate import pairwise_report, wilson_interval  # noqa: E402
from ml.reward.losses import (  # noqa: E402
    bradley_terry_loss,
    pairwise_accuracy,
    pairwise_loss,
    uncertainty_loss,
)
from ml.reward.train import lr_factor  # noqa: E402


def expected_loss(mean: float, std: float) -> float:
    """E[log(1 + exp(-z))], z ~ N(mean, std^2), by the trapezoid rule on a fine grid (+-12 std)."""
    z = np.linspace(mean - 12 * std, mean + 12 * std, 200_001)
    density = np.exp(-0.5 * ((z - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))
    return float(np.trapezoid(np.logaddexp(0.0, -z) * density, z))


def test_bradley_terry_is_the_closed_form():
    mu_w = torch.tensor([2.0, -1.0, 0.5, 30.0, -30.0], dtype=torch.float64)
    mu_l = torch.tensor([1.0, 1.0, 0.5, 0.0, 0.0], dtype=torch.float64)
    by_hand = [math.log(1 + math.exp(-(win - lose))) for win, lose in zip(mu_w.tolist(), mu_l.tolist(), strict=True)]
    assert bradley_terry_loss(mu_w, mu_l).item() == pytest.approx(sum(by_hand) / len(by_hand), rel=1e-12)
    # No overflow at large margins: -log sigmoid(-40) = 40 + log(1 + e^-40).
    assert bradley_terry_loss(torch.tensor([-40.0]), torch.tensor([0.0])).item() == pytest.approx(40.0, rel=1e-6)


@pytest.mark.parametrize(("mean", "log_w", "log_l"), [(0.0, 0.0, 0.0), (1.5, -0.5, 0.3), (-2.0, 0.7, 0.2)])
def test_uncertainty_loss_matches_the_integral(mean, log_w, log_l):
    std = math.sqrt(math.exp(2 * log_w) + math.exp(2 * log_l))
    generator = torch.Generator().manual_seed(0)
    samples = 400_000
    mc = uncertainty_loss(torch.tensor([mean], dtype=torch.float64), torch.tensor([log_w], dtype=torch.float64),
                          torch.tensor([0.0], dtype=torch.float64), torch.tensor([log_l], dtype=torch.float64),
                          samples=samples, generator=generator).item()
    exact = expected_loss(mean, std)
    # Monte-Carlo standard error: at most std(softplus(-z)) / sqrt(n) <= (|mean| + 4 std) / sqrt(n).
    assert abs(mc - exact) < 4 * (abs(mean) + 4 * std) / math.sqrt(samples)
    # And it is not the Bradley-Terry loss of the means: the noise raises the loss (softplus is convex).
    assert exact > math.log(1 + math.exp(-mean)) + 1e-3


def test_uncertainty_loss_tends_to_bradley_terry_as_sigma_vanishes():
    mu_w, mu_l = torch.tensor([0.3, 2.0]), torch.tensor([0.1, -1.0])
    tiny = torch.full((2,), -30.0)
    assert uncertainty_loss(mu_w, tiny, mu_l, tiny, samples=16).item() == pytest.approx(
        bradley_terry_loss(mu_w, mu_l).item(), rel=1e-6)


def test_gradients_reach_mu_and_sigma_and_match_the_integral():
    mean, log_w, log_l = 0.5, -0.2, 0.1
    mu_w = torch.tensor([mean], dtype=torch.float64, requires_grad=True)
    mu_l = torch.tensor([0.0], dtype=torch.float64, requires_grad=True)
    ls_w = torch.tensor([log_w], dtype=torch.float64, requires_grad=True)
    ls_l = torch.tensor([log_l], dtype=torch.float64, requires_grad=True)
    uncertainty_loss(mu_w, ls_w, mu_l, ls_l, samples=400_000, generator=torch.Generator().manual_seed(1)).backward()

    def exact(m: float, a: float, b: float) -> float:
        return expected_loss(m, math.sqrt(math.exp(2 * a) + math.exp(2 * b)))

    h = 1e-4
    d_mean = (exact(mean + h, log_w, log_l) - exact(mean - h, log_w, log_l)) / (2 * h)
    d_log_w = (exact(mean, log_w + h, log_l) - exact(mean, log_w - h, log_l)) / (2 * h)
    assert d_mean < 0 and d_log_w > 0  # a bigger margin lowers the loss; more noise raises it
    assert mu_w.grad.item() == pytest.approx(d_mean, abs=3e-3)
    assert mu_l.grad.item() == pytest.approx(-d_mean, abs=3e-3)
    assert ls_w.grad.item() == pytest.approx(d_log_w, abs=3e-3)
    assert ls_l.grad.item() > 0


def test_monte_carlo_noise_comes_from_the_seeded_generator():
    args = (torch.tensor([0.2, 0.4]), torch.zeros(2), torch.tensor([0.1, 0.5]), torch.zeros(2))

    def loss(seed: int) -> float:
        return pairwise_loss("uncertainty", *args, samples=8, generator=torch.Generator().manual_seed(seed)).item()

    assert loss(3) == loss(3)
    assert loss(3) != loss(4)
    with pytest.raises(ValueError, match="unknown loss"):
        pairwise_loss("hinge", *args)


def test_pairwise_accuracy_counts_ties_half():
    assert pairwise_accuracy(torch.tensor([1.0, 2.0, 3.0, 0.0]), torch.tensor([0.0, 2.0, 4.0, -1.0])) == 0.625


def test_learning_rate_warms_up_then_follows_a_cosine():
    config = TrainConfig(lr=1.0, warmup_steps=4, schedule="cosine", min_lr_ratio=0.1)
    factors = [lr_factor(step, config, 14) for step in range(15)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and all(a >= b for a, b in zip(factors[4:], factors[5:], strict=False))
    assert factors[9] == pytest.approx(0.55) and factors[14] == pytest.approx(0.1)
    constant = TrainConfig(warmup_steps=2, schedule="constant")
    assert [lr_factor(step, constant, 10) for step in (0, 1, 2, 9)] == [0.5, 1.0, 1.0, 1.0]


def test_shards_cover_the_data_equally_and_deterministically():
    shards = [shard_batches(10, batch_size=2, rank=rank, world=2, seed=5, epoch=0) for rank in range(2)]
    assert [len(s) for s in shards] == [3, 3] and all(len(b) == 2 for s in shards for b in s)
    seen = [i for s in shards for b in s for i in b]
    assert set(seen) == set(range(10)) and len(seen) == 12  # padded by wrapping round, as DistributedSampler
    assert shard_batches(10, batch_size=2, rank=1, world=2, seed=5, epoch=0) == shards[1]
    assert shard_batches(10, batch_size=2, rank=1, world=2, seed=5, epoch=1) != shards[1]


def test_wilson_interval_matches_statsmodels():
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    for correct, n in [(0, 10), (7, 10), (343, 365), (50, 50)]:
        low, high = proportion.proportion_confint(correct, n, alpha=0.05, method="wilson")
        assert wilson_interval(correct, n) == (pytest.approx(low, abs=1e-9), pytest.approx(high, abs=1e-9))


def test_report_breaks_accuracy_down_like_table_1():
    results = [(1, ["left_right"], 1.0, 0.0), (1, ["left_right", "swap"], 0.0, 1.0), (2, ["swap"], 2.0, 1.0),
               (3, ["order"], 0.5, 0.5)]
    report = pairwise_report(results)
    assert report["pairs"] == 4
    assert report["overall"]["accuracy"] == pytest.approx(2.5 / 4)
    assert report["1 edit"]["n"] == 2 and report["1 edit"]["accuracy"] == 0.5
    assert report["2-3 edits"]["n"] == 2 and report["2-3 edits"]["accuracy"] == 0.75
    assert report["by_relation"]["swap"] == {**report["by_relation"]["swap"], "n": 2, "correct": 1.0}
    assert set(report["by_relation"]) == {"left_right", "swap", "order"}
    low, high = report["overall"]["ci95"]
    assert low < 0.625 < high
