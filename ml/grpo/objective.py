"""Group advantages with the paper's top-k filtering, and the clipped GRPO loss.

Advantages (per prompt group of G rewards r_1..r_G):
    kept = the k lowest and the k highest rewards (all G when k = 0 or 2k >= G)
    A_i  = clip((r_i - mean) / (std + eps), -c, c)      for kept i, and no training pass for the others
where mean and std (population std) are taken over the kept rewards (stats="kept") or over all G ("group").

Loss per (sample, trained timestep), averaged (PPO's clipped surrogate plus the KL to the reference):
    ratio = exp(log p_theta(x_{t+dt} | x_t) - log p_old(x_{t+dt} | x_t))
    loss  = max(-A ratio, -A clip(ratio, 1 - epsilon, 1 + epsilon)) + beta KL(p_theta || p_ref)"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Advantages:
    values: torch.Tensor  # (prompts, G) float32; 0 where not kept
    kept: torch.Tensor  # (prompts, G) bool


def keep_mask(rewards: torch.Tensor, k: int) -> torch.Tensor:
    """(prompts, G) bool: the k lowest and k highest rewards of each row (ties broken by position); every sample when
    k = 0 or 2k >= G."""
    groups, size = rewards.shape
    if k <= 0 or 2 * k >= size:
        return torch.ones_like(rewards, dtype=torch.bool)
    order = torch.argsort(rewards, dim=1, stable=True)
    chosen = torch.cat([order[:, :k], order[:, -k:]], dim=1)
    mask = torch.zeros_like(rewards, dtype=torch.bool)
    mask[torch.arange(groups).unsqueeze(1), chosen] = True
    return mask


def group_advantages(rewards: torch.Tensor, *, k: int, stats: str = "kept", eps: float = 1e-4,
                     clip: float = 5.0) -> Advantages:
    """Advantages of a (prompts, G) reward table, normalised per row (see the module docstring)."""
    rewards = rewards.float()
    kept = keep_mask(rewards, k)
    if stats == "kept":
        weight = kept.float()
    elif stats == "group":
        weight = torch.ones_like(rewards)
    else:
        raise ValueError(f"stats must be 'kept' or 'group', not {stats!r}")
    count = weight.sum(dim=1, keepdim=True)
    mean = (rewards * weight).sum(dim=1, keepdim=True) / count
    std = (((rewards - mean) ** 2 * weight).sum(dim=1, keepdim=True) / count).sqrt()
    values = ((rewards - mean) / (std + eps)).clamp(-clip, clip)
    return Advantages(values=torch.where(kept, values, torch.zeros_like(values)), kept=kept)


@dataclass
class LossTerms:
    loss: torch.Tensor  # scalar, to backpropagate
    policy_loss: torch.Tensor  # scalar
    kl: torch.Tensor  # scalar (0 when beta = 0)
    clip_fraction: torch.Tensor  # scalar: share of ratios outside [1 - epsilon, 1 + epsilon]
    ratio: torch.Tensor  # (batch,)


def grpo_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor, *, clip_range: float,
              beta: float = 0.0, kl: torch.Tensor | None = None) -> LossTerms:
    """The clipped surrogate plus beta KL for a batch of (sample, timestep) terms, each (batch,), averaged."""
    ratio = torch.exp(log_prob - old_log_prob)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    policy_loss = torch.maximum(unclipped, clipped).mean()
    kl_mean = kl.mean() if kl is not None else torch.zeros((), device=log_prob.device)
    loss = policy_loss + beta * kl_mean if beta > 0 else policy_loss
    clip_fraction = ((ratio - 1.0).abs() > clip_range).float().mean()
    return LossTerms(loss=loss, policy_loss=policy_loss.detach(), kl=kl_mean.detach(),
                     clip_fraction=clip_fraction.detach(), ratio=ratio.detach())
