"""The policy: a diffusers flow-matching pipeline (Flux first, SD3 second) whose transformer carries a LoRA adapter,
with the few pieces of the pipeline GRPO needs taken apart: prompt encoding, initial noise, the sigma schedule,
one velocity prediction, and decoding. `sample` is the unrolled denoising loop (SDE for training, ODE for
evaluation) that records every step's latents and log-probability.

The reference policy is the same transformer with the adapter switched off (`reference()`), so no second copy of
the weights is needed. Every transformer call is counted (`nfe`: one per sample, two with classifier-free
guidance), so the trainer can report function evaluations."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.pipelines.flux.pipeline_flux import calculate_shift
from peft import LoraConfig
from PIL import Image

from ml.generation.diffusers_backend import _dtype_kwarg
from ml.grpo.sde import sde_step

FAMILIES = ("flux", "sd3")


@dataclass
class Conditioning:
    """Text conditioning for a batch of samples (row i belongs to sample i); `negative_*` set with true CFG."""

    embeds: torch.Tensor
    pooled: torch.Tensor
    negative_embeds: torch.Tensor | None = None
    negative_pooled: torch.Tensor | None = None

    def take(self, index: torch.Tensor | Sequence[int]) -> Conditioning:
        index = torch.as_tensor(index, dtype=torch.long, device=self.embeds.device)

        def pick(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.index_select(0, index)

        return Conditioning(pick(self.embeds), pick(self.pooled), pick(self.negative_embeds),
                            pick(self.negative_pooled))


@dataclass
class Trajectory:
    latents: torch.Tensor  # (batch, steps + 1, ...) float32: x at every step, the initial noise first
    log_probs: torch.Tensor | None  # (batch, steps) float32; None for the ODE
    sigmas: torch.Tensor  # (steps + 1,) float32, 1 ... 0


def pipeline_family(pipe: DiffusionPipeline) -> str:
    name = type(pipe).__name__
    if name.startswith("Flux"):
        return "flux"
    if name.startswith("StableDiffusion3"):
        return "sd3"
    raise ValueError(f"pretrained: {name} is not a flow-matching pipeline GRPO supports (Flux, SD3).")


class FlowPolicy:
    def __init__(self, pipe: DiffusionPipeline, *, device: torch.device, dtype: torch.dtype) -> None:
        self.pipe = pipe
        self.family = pipeline_family(pipe)
        self.device, self.dtype = device, dtype
        self.transformer = pipe.transformer
        self.nfe = 0  # transformer evaluations, one per sample (two with CFG)
        for component in pipe.components.values():
            if isinstance(component, torch.nn.Module):
                component.requires_grad_(False)
                component.eval()

    @classmethod
    def from_pretrained(cls, folder: str | Path, *, device: torch.device, dtype: torch.dtype) -> FlowPolicy:
        if not (Path(folder) / "model_index.json").is_file():
            raise FileNotFoundError(f"pretrained: no diffusers pipeline folder at {str(folder)!r}.")
        pipe = DiffusionPipeline.from_pretrained(folder, **{_dtype_kwarg(): dtype})
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe.to(device), device=device, dtype=dtype)

    # --- LoRA -------------------------------------------------------------------------------------------------

    def add_lora(self, *, rank: int, alpha: float, targets: list[str], init: str = "default") -> None:
        """A trainable LoRA adapter on the transformer (peft through diffusers), its weights in float32."""
        config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets,
                            init_lora_weights=init == "default")  # False: B random too
        self.transformer.add_adapter(config)
        for param in self.lora_parameters():
            param.data = param.data.float()

    def lora_parameters(self) -> list[torch.nn.Parameter]:
        return [param for name, param in self.transformer.named_parameters() if "lora_" in name]

    def lora_state_dict(self) -> dict[str, torch.Tensor]:
        from peft.utils import get_peft_model_state_dict

        return {key: value.detach().float().cpu().clone()
                for key, value in get_peft_model_state_dict(self.transformer).items()}

    def load_lora_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        from peft.utils import set_peft_model_state_dict

        result = set_peft_model_state_dict(self.transformer, state)
        unexpected = getattr(result, "unexpected_keys", None)
        if unexpected:
            raise ValueError(f"LoRA weights that this transformer does not have: {unexpected[:3]}")

    def save_lora(self, folder: str | Path, state: dict[str, torch.Tensor] | None = None) -> None:
        """The LoRA in the format the pipeline's `load_lora_weights` reads (pytorch_lora_weights.safetensors),
        with the adapter's config as metadata so its alpha travels with it."""
        type(self.pipe).save_lora_weights(
            str(folder), transformer_lora_layers=state if state is not None else self.lora_state_dict(),
            transformer_lora_adapter_metadata=self.transformer.peft_config["default"].to_dict())

    @contextlib.contextmanager
    def reference(self) -> Iterator[None]:
        """The reference policy: the same transformer with the LoRA adapter switched off (peft's BaseTunerLayer
        enable_adapters(False), through diffusers' disable_adapters)."""
        self.transformer.disable_adapters()
        try:
            yield
        finally:
            self.transformer.enable_adapters()

    # --- The pipeline's parts ---------------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, prompts: Sequence[str], *, max_sequence_length: int, negative_prompt: str | None = None
               ) -> Conditioning:
        """One row per prompt. With `negative_prompt` (true CFG) the negative conditioning is encoded too."""
        prompts = list(prompts)
        if self.family == "flux":
            limit = min(max_sequence_length, self.pipe.tokenizer_2.model_max_length)
            embeds, pooled, _ = self.pipe.encode_prompt(prompts, prompt_2=None, device=self.device,
                                                        max_sequence_length=limit)
            cond = Conditioning(embeds, pooled)
            if negative_prompt is not None:
                neg, neg_pooled, _ = self.pipe.encode_prompt([negative_prompt] * len(prompts), prompt_2=None,
                                                             device=self.device, max_sequence_length=limit)
                cond.negative_embeds, cond.negative_pooled = neg, neg_pooled
            return cond
        limit = min(max_sequence_length, self.pipe.tokenizer_3.model_max_length)
        embeds, neg, pooled, neg_pooled = self.pipe.encode_prompt(
            prompts, None, None, device=self.device, do_classifier_free_guidance=negative_prompt is not None,
            negative_prompt=negative_prompt, max_sequence_length=limit)
        return Conditioning(embeds, pooled, neg, neg_pooled)

    def latent_size(self, height: int, width: int) -> tuple[int, int]:
        scale = self.pipe.vae_scale_factor
        return 2 * (height // (scale * 2)), 2 * (width // (scale * 2))

    def initial_noise(self, generators: Sequence[torch.Generator], height: int, width: int) -> torch.Tensor:
        """x_1 ~ N(0, I) in the transformer's latent layout (Flux: packed 2x2 patches), one generator per sample."""
        h, w = self.latent_size(height, width)
        if self.family == "flux":
            channels = self.transformer.config.in_channels // 4
            noise = torch.stack([torch.randn((channels, h, w), generator=g, device=self.device) for g in generators])
            return self.pipe._pack_latents(noise, len(generators), channels, h, w).float()
        channels = self.transformer.config.in_channels
        return torch.stack([torch.randn((channels, h, w), generator=g, device=self.device) for g in generators])

    def step_noise(self, generators: Sequence[torch.Generator], like: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.randn(like.shape[1:], generator=g, device=like.device) for g in generators])

    def sigmas(self, steps: int, height: int, width: int) -> torch.Tensor:
        """The pipeline's own sigma schedule (FlowMatchEulerDiscreteScheduler, with Flux's resolution-dependent
        shift where the scheduler asks for it): steps + 1 values from 1 down to 0, float32."""
        scheduler = self.pipe.scheduler
        if scheduler.config.get("use_dynamic_shifting", False):
            h, w = self.latent_size(height, width)
            seq_len = (h // 2) * (w // 2)
            mu = calculate_shift(seq_len, scheduler.config.get("base_image_seq_len", 256),
                                 scheduler.config.get("max_image_seq_len", 4096),
                                 scheduler.config.get("base_shift", 0.5), scheduler.config.get("max_shift", 1.15))
            scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps).tolist(), mu=mu, device="cpu")
        else:
            scheduler.set_timesteps(steps, device="cpu")
        return scheduler.sigmas.float().clone()

    def velocity(self, latents: torch.Tensor, t: torch.Tensor, cond: Conditioning, *, height: int, width: int,
                 guidance: float = 3.5, cfg_scale: float = 1.0) -> torch.Tensor:
        """The transformer's velocity prediction at time t ((batch,) in [0, 1]), float32. With cfg_scale > 1 the
        negative conditioning runs in the same batch and v = v_neg + cfg (v_pos - v_neg)."""
        batch = latents.shape[0]
        t = torch.as_tensor(t, dtype=torch.float32, device=self.device).expand(batch)
        cfg = cfg_scale > 1 and cond.negative_embeds is not None
        x, embeds, pooled = latents, cond.embeds, cond.pooled
        if cfg:
            x = torch.cat([latents, latents])
            embeds = torch.cat([cond.negative_embeds, cond.embeds])
            pooled = torch.cat([cond.negative_pooled, cond.pooled])
            t = torch.cat([t, t])
        self.nfe += x.shape[0]
        if self.family == "flux":
            h, w = self.latent_size(height, width)
            image_ids = self.pipe._prepare_latent_image_ids(x.shape[0], h // 2, w // 2, self.device, self.dtype)
            text_ids = torch.zeros(embeds.shape[1], 3, device=self.device, dtype=self.dtype)
            guidance_in = (torch.full((x.shape[0],), guidance, device=self.device, dtype=torch.float32)
                           if self.transformer.config.guidance_embeds else None)
            out = self.transformer(hidden_states=x.to(self.dtype), timestep=t.to(self.dtype), guidance=guidance_in,
                                   pooled_projections=pooled, encoder_hidden_states=embeds, txt_ids=text_ids,
                                   img_ids=image_ids, return_dict=False)[0]
        else:
            out = self.transformer(hidden_states=x.to(self.dtype), timestep=(t * 1000).to(self.dtype),
                                   encoder_hidden_states=embeds, pooled_projections=pooled, return_dict=False)[0]
        out = out.float()
        if cfg:
            negative, positive = out.chunk(2)
            return negative + cfg_scale * (positive - negative)
        return out

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, height: int, width: int) -> list[Image.Image]:
        vae = self.pipe.vae
        if self.family == "flux":
            latents = self.pipe._unpack_latents(latents, height, width, self.pipe.vae_scale_factor)
        latents = latents / vae.config.scaling_factor + vae.config.shift_factor
        images = vae.decode(latents.to(vae.dtype), return_dict=False)[0]
        return self.pipe.image_processor.postprocess(images.float(), output_type="pil")


@torch.no_grad()
def sample(policy: FlowPolicy, cond: Conditioning, generators: Sequence[torch.Generator], *, steps: int,
           noise_level: float, height: int, width: int, guidance: float = 3.5, cfg_scale: float = 1.0) -> Trajectory:
    """Denoises one batch from x_1 = noise (each sample's from its own generator, which also draws its SDE noise) in
    `steps` steps of the SDE (noise_level > 0) or the ODE (noise_level = 0), recording every x_t and, for the SDE,
    every step's log-probability."""
    sigmas = policy.sigmas(steps, height, width)
    x = policy.initial_noise(generators, height, width)
    latents, log_probs = [x], []
    for i in range(steps):
        v = policy.velocity(x, sigmas[i], cond, height=height, width=width, guidance=guidance, cfg_scale=cfg_scale)
        noise = policy.step_noise(generators, x) if noise_level > 0 else None
        step = sde_step(x, v, sigmas[i], sigmas[i + 1], noise_level=noise_level, sigma_max=float(sigmas[1]),
                        noise=noise)
        x = step.sample
        latents.append(x)
        if step.log_prob is not None:
            log_probs.append(step.log_prob)
    return Trajectory(latents=torch.stack(latents, dim=1), log_probs=torch.stack(log_probs, dim=1) if log_probs
                      else None, sigmas=sigmas)


def seeded_generators(seeds: Sequence[int], device: torch.device) -> list[torch.Generator]:
    return [torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds]
