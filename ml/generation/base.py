"""What a worker calls: a loaded backend turns a batch of (prompt, seed) requests into images.

Pure Python at import. `load_backend` imports the backend's module only when asked, so loading the
scene renderer never imports torch and the diffusers backend imports it only inside a worker."""

from __future__ import annotations

import gc
import importlib
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from ml.generation.settings import BACKEND_SETTINGS, validate_settings

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


class BackendCache:
    """Keeps the one backend a worker last loaded, while jobs for the same generator keep coming.

    A GPU worker runs one task at a time (pool solo), so one slot is enough: asking for another generator
    closes the current one first, releasing its memory before the next one loads."""

    def __init__(self) -> None:
        self.key: Any = None
        self.backend: Backend | None = None
        self.loads = 0

    def get(self, key: Any, backend: str, settings: dict) -> Backend:
        if self.backend is not None and self.key == key:
            return self.backend
        self.release()
        logger.info("loading %s backend for %s", backend, key)
        self.backend = load_backend(backend, settings)
        self.key = key
        self.loads += 1
        return self.backend

    def release(self) -> None:
        if self.backend is not None:
            self.backend.close()
        self.backend, self.key = None, None
        gc.collect()
