"""The maths of Flow-GRPO without a model: the SDE step and its log-probability against torch.distributions, the
ODE limit against diffusers' scheduler, the KL, group advantages with top-k filtering, and the clipped loss against
hand-computed numbers."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from diffusers import FlowMatchEulerDiscreteScheduler  # noqa: E402

from ml.grpo.config import GRPOConfig  # noqa: E402
from ml.grpo.objective import group_advantages, grpo_loss, keep_mask  # noqa: E402
from ml.grpo.sde import gaussian_kl, sde_sigma, sde_step  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_sde_step_log_probability_is_the_gaussian_density_of_its_mean_and_std():
    gen = torch.Generator().manual_seed(0)
    x, v = torch.randn(3, 16, 8, generator=gen), torch.randn(3, 16, 8, generator=gen)
    noise = torch.randn(3, 16, 8, generator=gen)
    t, t_next, a, sigma_max = 0.6, 0.45, 0.7, 0.9
    step = sde_step(x, v, t, t_next, noise_level=a, sigma_max=sigma_max, noise=noise)

    # The formula written out independently: mean and std of mission.md's SDE step.
    sigma_t = a * math.sqrt(t / (1 - t))
    dt = t_next - t
    mean = x + (v + sigma_t**2 / (2 * t) * (x + (1 - t) * v)) * dt
    std = sigma_t * math.sqrt(-dt)
    torch.testing.assert_close(step.mean, mean)
    torch.testing.assert_close(step.std, torch.full((3,), std))
    torch.testing.assert_close(step.sample, mean + std * noise)
    expected = torch.distributions.Normal(mean.double(), std).log_prob(step.sample.double()).mean(dim=(1, 2))
    assert step.log_prob.dtype == torch.float32
    torch.testing.assert_close(step.log_prob.double(), expected, rtol=1e-5, atol=1e-5)

    # Given the sample (training's recomputation), the same log-probability, and a different sample scores lower
    # when it lies further from the mean.
    again = sde_step(x, v, t, t_next, noise_level=a, sigma_max=sigma_max, prev_sample=step.sample)
    torch.testing.assert_close(again.log_prob, step.log_prob)
    far = sde_step(x, v, t, t_next, noise_level=a, sigma_max=sigma_max, prev_sample=mean + 3 * std * noise)
    assert (far.log_prob < step.log_prob).all()


def test_noise_level_zero_is_the_schedulers_euler_step():
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    scheduler.set_timesteps(6)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 8, 8, generator=gen)
    for i, timestep in enumerate(scheduler.timesteps):
        v = torch.randn(2, 4, 8, 8, generator=gen)
        ours = sde_step(x, v, scheduler.sigmas[i], scheduler.sigmas[i + 1], noise_level=0.0,
                        sigma_max=float(scheduler.sigmas[1]))
        theirs = scheduler.step(v, timestep, x).prev_sample
        torch.testing.assert_close(ours.sample, theirs)
        assert ours.log_prob is None and (ours.std == 0).all()
        x = theirs


def test_the_first_step_at_t_1_has_a_finite_std():
    sigma = sde_sigma(torch.tensor([1.0, 0.5]), 0.7, sigma_max=0.9)
    assert torch.isfinite(sigma).all()
    assert sigma[0] == pytest.approx(0.7 * math.sqrt(1 / 0.1))
    assert sigma[1] == pytest.approx(0.7)


def test_the_kl_between_two_steps_is_the_squared_mean_distance_over_twice_the_variance():
    mean, ref = torch.zeros(2, 4), torch.tensor([[1.0, 0, 0, 0], [2.0, 2.0, 0, 0]])
    std = torch.tensor([0.5, 2.0])
    kl = gaussian_kl(mean, ref, std)
    # ||mu - mu_ref||^2 / (2 sigma^2), averaged over the 4 elements.
    torch.testing.assert_close(kl, torch.tensor([1 / (2 * 0.25) / 4, 8 / (2 * 4.0) / 4]))
    p = torch.distributions.Normal(mean, std[:, None])
    q = torch.distributions.Normal(ref, std[:, None])
    torch.testing.assert_close(kl, torch.distributions.kl_divergence(p, q).mean(dim=1))


def test_top_k_keeps_exactly_the_k_best_and_k_worst():
    rewards = torch.tensor([[0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6]])
    kept = keep_mask(rewards, 2)
    assert kept.tolist() == [[False, True, True, False, False, True, True, False]]  # 0.9, 0.8 and 0.1, 0.2
    assert keep_mask(rewards, 4).all() and keep_mask(rewards, 0).all()  # k = G/2 and k = 0: no filtering
    many = torch.randn(5, 24, generator=torch.Generator().manual_seed(0))
    mask = keep_mask(many, 6)
    assert (mask.sum(dim=1) == 12).all()
    for row, row_mask in zip(many, mask, strict=True):
        ranks = row.argsort().argsort()
        assert set(ranks[row_mask].tolist()) == set(range(6)) | set(range(18, 24))


def test_advantages_from_the_kept_set_or_the_whole_group():
    rewards = torch.tensor([[1.0, 2.0, 3.0, 4.0, 10.0, 11.0]])
    kept = group_advantages(rewards, k=1, stats="kept", eps=0.0)
    # Kept: 1 and 11; mean 6, population std 5: advantages -1 and +1, the others 0 and not kept.
    torch.testing.assert_close(kept.values, torch.tensor([[-1.0, 0, 0, 0, 0, 1.0]]))
    assert kept.kept.tolist() == [[True, False, False, False, False, True]]
    group = group_advantages(rewards, k=1, stats="group", eps=0.0)
    mean, std = rewards.mean(), rewards.std(unbiased=False)
    torch.testing.assert_close(group.values, torch.tensor([[(1 - mean) / std, 0, 0, 0, 0, (11 - mean) / std]]))
    # The whole group's mean (5.17) sits below the kept pair's midpoint: the best image's advantage is larger.
    assert group.values[0, 5] > kept.values[0, 5]
    everything = group_advantages(rewards, k=3, stats="kept", eps=0.0)  # k = G/2: all kept, both stats agree
    torch.testing.assert_close(everything.values, group_advantages(rewards, k=0, stats="group", eps=0.0).values)
    assert everything.kept.all()


def test_advantages_are_clipped_and_a_group_of_one_has_none():
    rewards = torch.tensor([[0.0] * 99 + [1.0]])
    adv = group_advantages(rewards, k=0, stats="group", clip=5.0)
    assert adv.values.max() == pytest.approx(5.0)  # unclipped it would be 9.95
    assert group_advantages(rewards, k=0, stats="group", clip=100.0).values.max() > 9.9
    single = group_advantages(torch.tensor([[3.0], [7.0]]), k=0, stats="group")
    assert (single.values == 0).all()


def test_the_loss_on_a_hand_computed_example():
    # Two terms: A = +1 with ratio e^0.1 (clipped to 1.2), A = -2 with ratio e^-0.5 (clipped to 0.8).
    log_prob, old = torch.tensor([0.1, -0.5]), torch.zeros(2)
    adv, kl = torch.tensor([1.0, -2.0]), torch.tensor([0.3, 0.1])
    out = grpo_loss(log_prob, old, adv, clip_range=0.2, beta=0.5, kl=kl)
    r1, r2 = math.exp(0.1), math.exp(-0.5)
    term1 = max(-1 * r1, -1 * min(r1, 1.2))  # = -r1 (inside the range)
    term2 = max(2 * r2, 2 * max(r2, 0.8))  # = 1.6 (the clipped one is larger)
    assert out.policy_loss.item() == pytest.approx((term1 + term2) / 2, rel=1e-6)
    assert out.loss.item() == pytest.approx((term1 + term2) / 2 + 0.5 * 0.2, rel=1e-6)
    assert out.clip_fraction.item() == pytest.approx(0.5)
    # One sample per group, no filtering: its advantage is 0, so the loss is beta * KL alone, and its gradient
    # reaches the policy only through the KL.
    log_prob = torch.tensor([0.2], requires_grad=True)
    zero = group_advantages(torch.tensor([[4.2]]), k=0, stats="group").values.reshape(-1)
    single = grpo_loss(log_prob, torch.zeros(1), zero, clip_range=1e-4, beta=0.01, kl=torch.tensor([2.0]))
    assert single.loss.item() == pytest.approx(0.02)
    single.loss.backward()
    assert log_prob.grad.item() == 0.0


def test_the_config_carries_the_papers_numbers():
    config = GRPOConfig()
    assert (config.group_size, config.top_k, config.sample_steps, config.eval_steps) == (24, 6, 6, 28)
    assert (config.lr, config.clip_range, config.beta, config.lora_rank) == (3e-4, 1e-4, 0.01, 32)
    assert (config.adv_clip, config.std_eps) == (5.0, 1e-4)
    assert config.kept_per_group * config.train_timesteps == 72
    assert GRPOConfig(top_k=12).kept_per_group * config.train_timesteps == 144
    with pytest.raises(ValueError):
        GRPOConfig(stats="median")
    with pytest.raises(ValueError, match="noise_level"):
        GRPOConfig(noise_level=0.0)
