"""The "scene-renderer" generator backend: draws each request's scene graph on the CPU, with exact ground truth.

Loaded by `ml.generation.base.load_backend("scene-renderer", settings)`. Pure Python plus Pillow, so a worker
without a GPU (or torch) can run the whole pair-generation pipeline with it.
"""

from __future__ import annotations

from collections.abc import Mapping

from ml.generation.base import GeneratedImage, GenerationRequest
from ml.generation.settings import SceneRendererSettings
from ml.render.scene import check_relations, layout_from_meta, render_scene
from ml.spatial.graph import SceneGraph
from ml.spatial.parser import parse


class SceneRendererBackend:
    def __init__(self, settings: SceneRendererSettings) -> None:
        self.settings = settings
        self.batch_size = settings.batch_size

    def generate(self, requests: list[GenerationRequest]) -> list[GeneratedImage]:
        """One image per request; its meta is the render's ground truth (objects, relations, breaks)."""
        images = []
        for request in requests:
            # The stored graph when the platform has one (it was checked when the prompt was saved); a perturbed
            # prompt's text is parsed here, exactly as the parser reads it everywhere else.
            if request.graph is not None:
                graph = SceneGraph.from_dict(request.graph, text=request.prompt)
            else:
                graph = parse(request.prompt)
            rendered = render_scene(graph, seed=request.seed, width=self.settings.width,
                                    height=self.settings.height, break_fraction=self.settings.break_fraction,
                                    labels=self.settings.labels, object_scale=self.settings.object_scale,
                                    back_scale=self.settings.back_scale, shapes=self.settings.shapes,
                                    exact_colours=self.settings.exact_colours)
            images.append(GeneratedImage(image=rendered.image, meta=rendered.meta))
        return images

    def close(self) -> None:
        """Nothing to release: the renderer holds no model."""


def follows(graph: SceneGraph, meta: Mapping) -> dict:
    """Does the image that `meta` describes follow `graph`? Evaluates every relation of `graph` on the layout
    recorded in the meta, matching objects by key (an object the image lacks fails its relations), so the worker
    can ask whether the image rendered for a perturbed prompt still follows the perfect prompt."""
    holds = check_relations(graph, layout_from_meta(meta), tuple(meta["size"]))
    return {"holds": holds, "follows": all(holds)}
