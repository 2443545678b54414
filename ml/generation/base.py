"""What a worker calls: a loaded backend turns a batch of (prompt, seed) requests into images.

Pure Python at import. `load_backend` imports the backend's module only when asked, so loading the
scene renderer never imports torch and the diffusers backend imports it only inside a worker."""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from ml.generation.settings import BACKEND_SETTINGS, validate_settings
from ml.slot import OneSlot

logger = logging.getLogger(__name__)

BACKEND_CLASSES = {
    "diffusers": "ml.generation.diffusers_backend:DiffusersBackend",
    "scene-renderer": "ml.render.backend:SceneRendererBackend",
}


@dataclass
class GenerationRequest:
    prompt: str
    seed: int
    # The prompt's parsed scene graph (SceneGraph.to_dict()), for backends that draw the graph itself.
    graph: dict | None = None


@dataclass
class GeneratedImage:
    image: Any  # PIL.Image.Image
    meta: dict = field(default_factory=dict)  # JSON-able, backend-specific (the renderer's layout and breaks)


class Backend(Protocol):
    batch_size: int

    def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:
        """One image per request, in order; a request's image depends only on its prompt, seed and the
        backend's settings, never on the other requests of the batch."""

    def close(self) -> None:
        """Release the model's memory (device memory included)."""


def load_backend(backend: str, settings: dict) -> Backend:
    checked, errors = validate_settings(backend, settings)
    if errors:
        raise ValueError("; ".join(f"{name}: {message}" for name, message in errors.items()))
    module_name, _, class_name = BACKEND_CLASSES[backend].partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(BACKEND_SETTINGS[backend](**checked))


class BackendCache(OneSlot):
    """Keeps the one generation backend a worker last loaded (ml.slot.OneSlot), while jobs for the same
    generator keep coming; asking for another generator closes the current one first."""

    def __init__(self) -> None:
        super().__init__("generation backend")

    @property
    def backend(self) -> Backend | None:
        return self.value

    def get(self, key: Any, backend: str, settings: dict) -> Backend:  # type: ignore[override]
        self.what = f"{backend} backend"  # the log says "loading diffusers backend for <key>"
        return super().get(key, lambda: load_backend(backend, settings))
