"""Settings of each generator backend, as dataclasses whose fields carry their help text and limits.

Pure Python: the platform validates a researcher's generator settings with `validate_settings` (errors name
the field) and builds its forms from `fields_of`, without importing torch."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


def _f(default, help: str, *, choices: tuple | None = None, min: float | None = None,  # noqa: A002
       max: float | None = None):  # noqa: A002
    meta = {"help": help, "choices": choices, "min": min, "max": max}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=meta)
    return field(default=default, metadata=meta)


IMAGE_FORMATS = ("png", "webp")


@dataclass
class DiffusersSettings:
    """Any text-to-image pipeline diffusers can load (FLUX.1-dev, SD3/3.5, Qwen-Image, ...)."""

    model: str = _f("", "Local folder holding the pipeline (model_index.json), or a hub id where the worker "
                        "can reach a hub.")
    dtype: str = _f("bfloat16", "Weights and compute dtype.", choices=("float32", "float16", "bfloat16"))
    device: str = _f("auto", "auto (CUDA when present, else CPU), cpu, cuda or cuda:N.")
    steps: int = _f(28, "Denoising steps.", min=1, max=1000)
    guidance: float = _f(3.5, "Guidance scale.", min=0.0, max=100.0)
    width: int = _f(1024, "Image width in pixels (a multiple of 16).", min=16, max=4096)
    height: int = _f(1024, "Image height in pixels (a multiple of 16).", min=16, max=4096)
    scheduler: str = _f("", "Scheduler class of diffusers to swap in (e.g. FlowMatchEulerDiscreteScheduler); "
                            "empty keeps the pipeline's own.")
    scheduler_options: dict = _f({}, "Keyword options for the scheduler's from_config (e.g. {\"shift\": 3.0}).")
    batch_size: int = _f(4, "Images per device batch (a perfect/perturbed pair is always in one batch).",
                         min=2, max=256)
    max_sequence_length: int = _f(0, "Text encoder token limit for pipelines that take it (0: pipeline "
                                     "default).", min=0, max=4096)
    lora: str = _f("", "Optional LoRA weights (a folder or .safetensors file that load_lora_weights reads, "
                       "e.g. a GRPO checkpoint of this platform).")
    lora_scale: float = _f(1.0, "Strength of the LoRA weights.", min=0.0, max=4.0)
    image_format: str = _f("png", "Stored image format.", choices=IMAGE_FORMATS)


@dataclass
class SceneRendererSettings:
    """The deterministic CPU renderer of parsed scene graphs (ml.render): no GPU, exact ground truth."""

    width: int = _f(512, "Image width in pixels.", min=64, max=4096)
    height: int = _f(512, "Image height in pixels.", min=64, max=4096)
    break_fraction: float = _f(0.0, "Share of relations drawn wrong on purpose (recorded as ground truth).",
                               min=0.0, max=1.0)
    labels: bool = _f(True, "Write each object's name on it.")
    object_scale: float = _f(1.0, "Size of every object relative to the default (at 1, a front object's side is "
                                  "about a fifth of the image's).", min=0.25, max=2.5)
    back_scale: float = _f(0.4, "Perspective: an object's drawn size at the back of the scene relative to the front "
                                "(0.4: strong; 0.9: nearly flat; 1: flat, every object at its nominal size and depth "
                                "shown only by which object covers which).",
                           min=0.2, max=1.0)
    shapes: str = _f("varied", "Object shapes: varied (a shape per noun: ellipses, triangles, diamonds, rounded and "
                               "plain rectangles) or rectangles (every object a plain box).",
                     choices=("varied", "rectangles"))
    exact_colours: bool = _f(False, "Draw a colour word in its exact shade (off: each shade strays a little, so two "
                                    "red things differ; a second thing of one colour always gets a nearby shade).")
    batch_size: int = _f(64, "Images per batch.", min=2, max=1024)
    image_format: str = _f("png", "Stored image format.", choices=IMAGE_FORMATS)


BACKEND_SETTINGS: dict[str, type] = {"diffusers": DiffusersSettings, "scene-renderer": SceneRendererSettings}
BACKEND_LABELS = {"diffusers": "diffusers pipeline (GPU)", "scene-renderer": "Scene renderer (CPU, ground truth)"}


def fields_of(backend: str) -> list[dataclasses.Field]:
    return list(dataclasses.fields(BACKEND_SETTINGS[backend]))


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    kind = type(f.default) if f.default is not dataclasses.MISSING else dict
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"true", "1", "yes", "on", "false", "0", "no", "off",
                                                                 ""}:
            return value.strip().lower() in {"true", "1", "yes", "on"}
        raise ValueError("must be true or false.")
    if kind is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError("must be a whole number.")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError("must be a whole number.") from None
    if kind is float:
        if isinstance(value, bool):
            raise ValueError("must be a number.")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError("must be a number.") from None
    if kind is dict:
        if not isinstance(value, dict):
            raise ValueError("must be an object of keyword options.")
        return dict(value)
    if not isinstance(value, str):
        raise ValueError("must be a string.")
    return value.strip()


def validate_settings(backend: str, data: dict | None) -> tuple[dict, dict[str, str]]:
    """Complete `data` with defaults and check every field. Returns (settings, errors by field name)."""
    if backend not in BACKEND_SETTINGS:
        return {}, {"backend": f"unknown backend {backend!r}; known: {', '.join(BACKEND_SETTINGS)}."}
    data = dict(data or {})
    errors: dict[str, str] = {}
    known = {f.name: f for f in fields_of(backend)}
    for name in sorted(set(data) - set(known)):
        errors[name] = f"unknown setting for the {backend} backend."
    settings: dict[str, Any] = {}
    for name, f in known.items():
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        try:
            value = _coerce(f, data[name]) if name in data else default
        except ValueError as exc:
            errors[name] = str(exc)
            continue
        meta = f.metadata
        if meta.get("choices") and value not in meta["choices"]:
            errors[name] = f"must be one of {', '.join(meta['choices'])}."
        elif meta.get("min") is not None and value < meta["min"]:
            errors[name] = f"must be at least {meta['min']}."
        elif meta.get("max") is not None and value > meta["max"]:
            errors[name] = f"must be at most {meta['max']}."
        settings[name] = value
    if backend == "diffusers" and not errors:
        if not settings["model"]:
            errors["model"] = "a local pipeline folder (or a hub id) is required."
        for side in ("width", "height"):
            if settings[side] % 16:
                errors[side] = "must be a multiple of 16."
        device = settings["device"]
        if device not in {"auto", "cpu", "cuda"} and not (device.startswith("cuda:") and device[5:].isdigit()):
            errors["device"] = "must be auto, cpu, cuda or cuda:N."
    if backend == "diffusers" and not errors and settings["batch_size"] % 2:
        errors["batch_size"] = "must be even: a perfect and a perturbed image share each batch."
    return (settings if not errors else {}), errors
