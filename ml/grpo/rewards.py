"""Reward functions for GRPO, registered by name. A reward function takes the prompts and the decoded PIL images
of a batch and returns one float32 score per image (higher is better).

- spatialscore: the SpatialScore reward model's mu (`SpatialScore.from_checkpoint(path).predict(...)`);
- brightness-left-right: the mean brightness of the image's left half minus its right half, in [-1, 1]: a
  programmatic reward that a tiny random pipeline can learn on CPU (tests, benchmarks);
- brightness: the mean brightness, in [0, 1].

The scene renderer's ground-truth checker (`ml.render.backend.follows`) is not offered: it reads the object layout
that the renderer records while drawing, and a diffusion model's image has no such layout (one would need an
object detector)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

RewardFn = Callable[[Sequence[str], Sequence[Image.Image]], torch.Tensor]
REWARDS: dict[str, Callable[..., RewardFn]] = {}


def register_reward(name: str):
    """Registers `factory(**options) -> RewardFn` under `name` (options: reward_model, device, batch_size)."""

    def register(factory: Callable[..., RewardFn]) -> Callable[..., RewardFn]:
        REWARDS[name] = factory
        return factory

    return register


def build_reward(name: str, **options) -> RewardFn:
    if name not in REWARDS:
        raise ValueError(f"reward: unknown reward {name!r} (registered: {', '.join(sorted(REWARDS))}).")
    return REWARDS[name](**options)


def _grey(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def left_minus_right(prompts: Sequence[str], images: Sequence[Image.Image]) -> torch.Tensor:
    scores = []
    for image in images:
        grey = _grey(image)
        half = grey.shape[1] // 2
        scores.append(grey[:, :half].mean() - grey[:, grey.shape[1] - half:].mean())
    return torch.tensor(scores, dtype=torch.float32)


def brightness(prompts: Sequence[str], images: Sequence[Image.Image]) -> torch.Tensor:
    return torch.tensor([_grey(image).mean() for image in images], dtype=torch.float32)


@register_reward("brightness-left-right")
def _left_minus_right(**options) -> RewardFn:
    return left_minus_right


@register_reward("brightness")
def _brightness(**options) -> RewardFn:
    return brightness


@register_reward("spatialscore")
def spatialscore(*, reward_model: str = "", device: str | torch.device = "cpu", batch_size: int = 16,
                 **options) -> RewardFn:
    if not reward_model:
        raise ValueError("reward_model: the spatialscore reward needs a SpatialScore checkpoint folder.")
    from ml.reward.model import SpatialScore

    model = SpatialScore.from_checkpoint(reward_model, device=device)
    model.eval()

    def score(prompts: Sequence[str], images: Sequence[Image.Image]) -> torch.Tensor:
        return model.predict(list(prompts), list(images), batch_size=batch_size).mu.float()

    return score
