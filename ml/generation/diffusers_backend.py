"""The `diffusers` generator backend: any text-to-image pipeline diffusers can load (FLUX.1, SD3/3.5, ...).

Loaded once per worker (see BackendCache), then called batch after batch. Two properties the pair generation
relies on:
- an image depends only on its own prompt, seed and the settings, never on its batch mates: every image gets its
  own torch.Generator, so its initial noise is drawn alone;
- a perfect and a perturbed prompt with the same seed start from the same noise, so their images differ by what
  the prompt changes.

dtype on CPU: the settings default to bfloat16 (what a GPU wants), but on CPU bfloat16/float16 matmuls and convs
are slow on most processors and some ops lack half kernels, so a CPU backend always computes in float32 and
reports that in each image's meta. On CUDA the requested dtype is used as given."""

from __future__ import annotations

import gc
import inspect
import logging
import time
from pathlib import Path
from typing import Any

import diffusers
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import deprecation_utils

from ml.generation.base import GeneratedImage, GenerationRequest
from ml.generation.settings import DiffusersSettings

logger = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
LORA_ADAPTER = "spatiallab"


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} was asked for but this machine has no CUDA device.")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    # See the module docstring: half precision on CPU is slow or unsupported, so CPU always runs float32.
    if device.type == "cpu" and dtype != "float32":
        logger.info("dtype %s asked for on CPU; computing in float32 instead", dtype)
        return torch.float32
    return DTYPES[dtype]


def _check_model(model: str) -> None:
    """A missing local folder would otherwise be taken for a hub id and fail with an unrelated hub error."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise FileNotFoundError(f"model: {model!r} holds no model_index.json (not a diffusers pipeline folder).")
        return
    # A hub id is "name" or "org/name"; anything else that does not exist is a missing folder.
    looks_like_hub_id = not path.is_absolute() and not model.startswith((".", "~")) and model.count("/") <= 1
    if path.exists() or not looks_like_hub_id:
        raise FileNotFoundError(f"model: no pipeline folder at {model!r}.")


def _dtype_kwarg() -> str:
    # Recent diffusers (0.42 here) deprecate from_pretrained's torch_dtype for dtype; older ones only know
    # torch_dtype.
    return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


class DiffusersBackend:
    """Loads `settings.model` once; `generate` turns (prompt, seed) requests into PIL images."""

    def __init__(self, settings: DiffusersSettings) -> None:
        self.settings = settings
        self.batch_size = settings.batch_size
        self.device = resolve_device(settings.device)
        self.dtype = resolve_dtype(settings.dtype, self.device)
        _check_model(settings.model)

        try:
            pipe = DiffusionPipeline.from_pretrained(settings.model, **{_dtype_kwarg(): self.dtype})
        except OSError as exc:  # hub ids that cannot be reached or found, unreadable folders
            raise FileNotFoundError(f"model: could not load {settings.model!r}: {exc}") from exc
        # On the device before the LoRA: fusing multiplies every adapted matrix, fast on a GPU, slow for a
        # 12B model on the CPU.
        pipe = pipe.to(self.device)
        if settings.scheduler:
            pipe.scheduler = self._scheduler(pipe, settings.scheduler, settings.scheduler_options)
        if settings.lora:
            self._load_lora(pipe, settings.lora, settings.lora_scale)
        pipe.set_progress_bar_config(disable=True)
        for component in pipe.components.values():
            if isinstance(component, torch.nn.Module):
                component.eval()
        self.pipe: Any = pipe
        self.scheduler_name = type(pipe.scheduler).__name__
        self._call_params = set(inspect.signature(pipe.__call__).parameters)

    @staticmethod
    def _scheduler(pipe: Any, name: str, options: dict) -> Any:
        cls = getattr(diffusers, name, None)
        if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
            raise ValueError(f"scheduler: {name!r} is not a scheduler class of diffusers "
                             f"(the pipeline's own is {type(pipe.scheduler).__name__}).")
        # from_config only logs options it does not know; a misspelt one would silently change nothing.
        known = set(inspect.signature(cls.__init__).parameters) - {"self"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"scheduler_options: {name} has no option {', '.join(map(repr, unknown))}.")
        return cls.from_config(pipe.scheduler.config, **options)

    @staticmethod
    def _load_lora(pipe: Any, lora: str, scale: float) -> None:
        path = Path(lora).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"lora: no LoRA weights at {lora!r}.")
        if not hasattr(pipe, "load_lora_weights"):
            raise ValueError(f"lora: {type(pipe).__name__} cannot load LoRA weights.")
        if path.is_file():  # a .safetensors file: load_lora_weights takes its folder and its name
            pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=LORA_ADAPTER)
        else:
            pipe.load_lora_weights(str(path), adapter_name=LORA_ADAPTER)
        # Fusing folds scale x alpha/rank x (B @ A) into the base weights, so sampling costs what it costs without
        # a LoRA (an unfused adapter adds two matmuls per adapted layer, every step); unloading then drops the
        # adapter layers and keeps the fused weights. Works the same for Flux and SD3 (checked on the tiny
        # pipelines). Fuse every LoRA-capable component, not fuse_lora's default (the transformer alone): a text
        # encoder LoRA left unfused would be dropped by the unload without a word.
        components = list(getattr(pipe, "_lora_loadable_modules", ["transformer"]))
        pipe.fuse_lora(components=components, lora_scale=scale, adapter_names=[LORA_ADAPTER])
        pipe.unload_lora_weights()

    def _generator(self, seed: int) -> torch.Generator:
        # Noise is drawn on the device that runs the model (CPU noise would be copied over every batch); the
        # same seed therefore gives different noise on CPU and CUDA, but always the same on one machine.
        return torch.Generator(device=self.device).manual_seed(seed)

    def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:
        images: list[GeneratedImage] = []
        for start in range(0, len(requests), self.batch_size):
            images.extend(self._generate_batch(requests[start:start + self.batch_size]))
        return images

    def _generate_batch(self, batch: list[GenerationRequest]) -> list[GeneratedImage]:
        if self.pipe is None:
            raise RuntimeError("this diffusers backend was closed; load a new one.")
        s = self.settings
        kwargs: dict[str, Any] = {
            "prompt": [r.prompt for r in batch],
            # One generator per image: its noise is drawn alone, so it does not depend on its batch mates.
            "generator": [self._generator(r.seed) for r in batch],
            "num_inference_steps": s.steps,
            "guidance_scale": s.guidance,
            "height": s.height,
            "width": s.width,
            "output_type": "pil",
        }
        if s.max_sequence_length > 0 and "max_sequence_length" in self._call_params:
            kwargs["max_sequence_length"] = s.max_sequence_length
        started = time.perf_counter()
        with torch.inference_mode():
            out = self.pipe(**kwargs).images
        seconds = (time.perf_counter() - started) / len(batch)
        meta = {
            "steps": s.steps,
            "guidance": s.guidance,
            "width": s.width,
            "height": s.height,
            "scheduler": self.scheduler_name,
            "dtype": str(self.dtype).removeprefix("torch."),
            "device": str(self.device),
            "lora": s.lora,
            "lora_scale": s.lora_scale if s.lora else None,
            "seconds": round(seconds, 4),
        }
        return [GeneratedImage(image=image, meta=dict(meta)) for image in out]

    def close(self) -> None:
        # The pipeline is the only reference to the weights; dropping it lets gc free them (and CUDA's caching
        # allocator hand the memory back once emptied) before the next backend loads.
        self.pipe = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
