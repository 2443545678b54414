"""The sampling step of Flow-GRPO: the flow-matching ODE turned into an SDE with the same marginals, so that each
denoising step is a Gaussian whose log-probability is exact. Everything here is float32.

Notation (rectified flow, as diffusers' FlowMatchEulerDiscreteScheduler): t (= sigma) runs from 1 (noise) to 0
(image), x_t = (1 - t) x_0 + t eps, and the model predicts the velocity v = eps - x_0. The deterministic Euler step
from t to t + dt (dt < 0) is x_{t+dt} = x_t + v dt. The SDE step (Flow-GRPO, arXiv 2505.05470, eq. 9) is

    x_{t+dt} = x_t + [v + sigma_t^2 / (2 t) * (x_t + (1 - t) v)] dt + sigma_t sqrt(|dt|) eps,   eps ~ N(0, I)
    sigma_t  = a sqrt(t / (1 - t))                                                                (a: noise level)

so x_{t+dt} ~ N(mean, std^2 I) with mean = x_t + [v + sigma_t^2 / (2 t) (x_t + (1 - t) v)] dt and
std = sigma_t sqrt(|dt|), and its log-density per element is

    log p = -(x_{t+dt} - mean)^2 / (2 std^2) - log std - log sqrt(2 pi).

At t = 1, t / (1 - t) is infinite; like Flow-GRPO, the first step uses the second sigma in the denominator.
a = 0 gives std = 0 and mean = the Euler step: the ODE."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class Step:
    sample: torch.Tensor  # x_{t+dt}
    mean: torch.Tensor  # the Gaussian's mean
    std: torch.Tensor  # its standard deviation, shape (batch,) (0 for the ODE)
    log_prob: torch.Tensor | None  # (batch,) mean over elements of log p(x_{t+dt}); None for the ODE


def sde_sigma(t: torch.Tensor, noise_level: float, sigma_max: float) -> torch.Tensor:
    """sigma_t = a sqrt(t / (1 - t)); at t = 1 the denominator takes 1 - sigma_max (the schedule's second sigma)."""
    t = t.float()
    denominator = 1 - torch.where(t >= 1, torch.as_tensor(sigma_max, dtype=torch.float32, device=t.device), t)
    return noise_level * torch.sqrt(t / denominator)


def sde_step(latents: torch.Tensor, velocity: torch.Tensor, t: torch.Tensor, t_next: torch.Tensor, *,
             noise_level: float, sigma_max: float, noise: torch.Tensor | None = None,
             prev_sample: torch.Tensor | None = None) -> Step:
    """One step from time t to t_next (< t) of the SDE above, for a batch.

    latents, velocity: (batch, ...) tensors; t, t_next: scalars or (batch,). With `prev_sample` given, the step is
    not drawn: its log-probability under this step's Gaussian is computed (training recomputes the log-probability
    of the sampled trajectory under the current policy). Otherwise x_{t+dt} = mean + std * noise (noise ~ N(0, I),
    drawn by the caller so every sample can have its own generator)."""
    x = latents.float()
    v = velocity.float()
    shape = (-1,) + (1,) * (x.ndim - 1)
    t = torch.as_tensor(t, dtype=torch.float32, device=x.device).expand(x.shape[0]).reshape(shape)
    t_next = torch.as_tensor(t_next, dtype=torch.float32, device=x.device).expand(x.shape[0]).reshape(shape)
    dt = t_next - t  # negative
    sigma = sde_sigma(t, noise_level, sigma_max)
    mean = x + (v + sigma**2 / (2 * t) * (x + (1 - t) * v)) * dt
    std = sigma * torch.sqrt(-dt)
    if prev_sample is None:
        if noise_level == 0:
            sample = mean
        else:
            if noise is None:
                raise ValueError("an SDE step (noise_level > 0) needs noise or prev_sample")
            sample = mean + std * noise.float()
    else:
        sample = prev_sample.float()
    log_prob = None if noise_level == 0 else gaussian_log_prob(sample.detach(), mean, std)
    return Step(sample=sample, mean=mean, std=std.reshape(-1), log_prob=log_prob)


def gaussian_log_prob(sample: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Per sample, the mean over its elements of log N(sample; mean, std^2): the exact log-density divided by the
    number of elements (Flow-GRPO's reduction: it keeps the ratio exp(log p - log p_old) in a usable range for
    latents of 10^4-10^5 elements; multiply by the element count for the joint log-density)."""
    std = std.reshape((-1,) + (1,) * (sample.ndim - 1))
    log_p = -((sample - mean) ** 2) / (2 * std**2) - torch.log(std) - LOG_SQRT_2PI
    return log_p.mean(dim=tuple(range(1, sample.ndim)))


def gaussian_kl(mean: torch.Tensor, mean_ref: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, std^2) || N(mean_ref, std^2)) = ||mean - mean_ref||^2 / (2 std^2) per element, averaged over each
    sample's elements like the log-probability; shape (batch,)."""
    std = std.reshape((-1,) + (1,) * (mean.ndim - 1))
    return ((mean - mean_ref) ** 2 / (2 * std**2)).mean(dim=tuple(range(1, mean.ndim)))
