"""The deterministic CPU scene renderer: draws a parsed SceneGraph as labelled, coloured shapes whose positions,
sizes and overlaps state its relations, and returns exact ground truth (which relations hold, which were broken
on purpose). Pure Python plus Pillow: no numpy, torch or Django.

`ml.render.scene` lays out, draws and checks scenes; `ml.render.backend` wraps it as the "scene-renderer"
generator backend that workers load through `ml.generation.base.load_backend`.
"""
