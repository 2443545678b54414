"""Pairwise losses of the reward model, and pairwise accuracy.

Every function takes the head's outputs for the winners (w) and the losers (l) of a batch of pairs, each a
tensor of shape (pairs,), and returns the mean over the pairs.

- Bradley-Terry (the paper): loss = -log sigmoid(mu_w - mu_l) = softplus(mu_l - mu_w).
- Uncertainty-aware (HPSv3's): each score is a Gaussian N(mu, sigma^2), so the margin is
  z ~ N(mu_w - mu_l, sigma_w^2 + sigma_l^2) and loss = E[-log sigmoid(z)]. The expectation is estimated by
  Monte-Carlo with the reparameterisation z = (mu_w - mu_l) + sqrt(sigma_w^2 + sigma_l^2) * eps, eps ~ N(0, 1),
  so the gradient reaches both mu and sigma. eps comes from a caller-seeded generator: the training loop seeds
  it from (seed, step), so a resumed run draws the same noise as an uninterrupted one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(mu_w: torch.Tensor, mu_l: torch.Tensor) -> torch.Tensor:
    # softplus(-d) is -log sigmoid(d) without overflow for large margins.
    return F.softplus(mu_l - mu_w).mean()


def uncertainty_loss(mu_w: torch.Tensor, log_sigma_w: torch.Tensor, mu_l: torch.Tensor, log_sigma_l: torch.Tensor,
                     *, samples: int = 64, generator: torch.Generator | None = None) -> torch.Tensor:
    """Monte-Carlo estimate of E[-log sigmoid(z)], z ~ N(mu_w - mu_l, sigma_w^2 + sigma_l^2), sigma = exp(log_sigma)."""
    mean = mu_w - mu_l
    # sigma^2 = exp(2 log_sigma): no sqrt of a square, so the gradient stays finite at small sigma.
    std = torch.sqrt(torch.exp(2 * log_sigma_w) + torch.exp(2 * log_sigma_l))
    eps = torch.randn((samples, *mean.shape), generator=generator, device="cpu", dtype=torch.float32)
    eps = eps.to(device=mean.device, dtype=mean.dtype)
    z = mean.unsqueeze(0) + std.unsqueeze(0) * eps
    return F.softplus(-z).mean()


def pairwise_loss(kind: str, mu_w, log_sigma_w, mu_l, log_sigma_l, *, samples: int = 64,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    if kind == "bt":
        return bradley_terry_loss(mu_w, mu_l)
    if kind == "uncertainty":
        return uncertainty_loss(mu_w, log_sigma_w, mu_l, log_sigma_l, samples=samples, generator=generator)
    raise ValueError(f"unknown loss {kind!r}; known: bt, uncertainty")


def pairwise_correct(mu_w: torch.Tensor, mu_l: torch.Tensor) -> torch.Tensor:
    """Per pair: 1 where the winner scores higher, 0.5 on a tie, 0 where the loser scores higher."""
    return (mu_w > mu_l).float() + 0.5 * (mu_w == mu_l).float()


def pairwise_accuracy(mu_w: torch.Tensor, mu_l: torch.Tensor) -> float:
    """Fraction of pairs whose winner scores higher than its loser (a tie counts half)."""
    if mu_w.numel() == 0:
        return float("nan")
    return pairwise_correct(mu_w, mu_l).mean().item()
