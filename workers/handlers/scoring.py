"""The scoring job (score_images): a reward checkpoint scores a score request's images and the request stores
them ranked best first.

- Uploads: the stored files, each with its own prompt.
- Best-of-n: the request's generator draws n samples of its prompt with seeds seed .. seed + n - 1 (the same
  backend cache and settings as the pair-generation job), each stored as score-requests/<id>/sample-<k>.png,
  then all n are scored with that prompt.

Scoring runs in batches of settings.REWARD_SCORE_BATCH, with progress after each. A requeued job
starts over: samples are deterministic in (generator settings, prompt, seed), their files are replaced, and the
results are written once, at the end."""

import io
import json
import math

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from ml.generation.base import GenerationRequest
from spatiallab.jobs.models import JobStatus
from spatiallab.rewards.models import ScoreRequest, ScoreRequestKind
from spatiallab.rewards.scoring import sample_name, score_request_finish, score_request_set_status
from workers.handlers.generate import BACKENDS, _backend_settings
from workers.handlers.rewards import load_scorer, open_image


def _store_png(name: str, image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    if default_storage.exists(name):  # a repeated attempt replaces its own sample (save() would rename)
        default_storage.delete(name)
    return default_storage.save(name, ContentFile(buffer.getvalue()))


def _samples(ctx, request: ScoreRequest, total: int) -> list[dict]:
    """Draws the request's n samples and stores them; returns one entry per sample."""
    generator = request.generator
    if generator is None:
        raise RuntimeError(f"score request {request.pk}: its generator was deleted")
    key = (generator.pk, json.dumps(generator.settings, sort_keys=True))
    backend = BACKENDS.get(key, generator.backend, _backend_settings(generator))
    entries: list[dict] = []
    seeds = [request.seed + k for k in range(request.n)]
    size = max(1, backend.batch_size)
    for start in range(0, len(seeds), size):
        batch = seeds[start:start + size]
        # No stored graph: a backend that needs one (the scene renderer) parses the text, as it does for every
        # prompt the platform has not parsed already.
        images = backend.generate([GenerationRequest(request.prompt, seed, None) for seed in batch])
        for offset, (seed, generated) in enumerate(zip(batch, images, strict=True)):
            k = start + offset
            name = _store_png(sample_name(request.pk, k), generated.image)
            entries.append({"index": k, "prompt": request.prompt, "image": name, "seed": seed,
                            "pil": generated.image.convert("RGB")})
        ctx.progress(len(entries), total=total, message=f"generated {len(entries)} of {request.n} samples")
    return entries


def run_score_images(ctx) -> dict:
    request = ScoreRequest.objects.select_related("generator").get(pk=ctx.params["request"])
    score_request_set_status(request_id=request.pk, status=JobStatus.RUNNING)
    best_of_n = request.kind == ScoreRequestKind.BEST_OF_N
    count = request.n if best_of_n else len(request.images)
    total = 2 * count if best_of_n else count  # best-of-n: n samples drawn, then n scored
    ctx.progress(0, total=total, message="generating samples" if best_of_n else "loading the reward model")

    if best_of_n:
        entries = _samples(ctx, request, total)
    else:
        entries = [{"index": index, "prompt": item["prompt"], "image": item["name"], "seed": None,
                    "filename": item.get("filename", "")} for index, item in enumerate(request.images)]

    scorer = load_scorer(request.checkpoint_path)
    batch_size = settings.REWARD_SCORE_BATCH
    done = count if best_of_n else 0
    results = []
    for start in range(0, len(entries), batch_size):
        batch = entries[start:start + batch_size]
        images = [entry.pop("pil", None) or open_image(entry["image"]) for entry in batch]
        out = scorer.predict([entry["prompt"] for entry in batch], images, batch_size=len(batch))
        for entry, mu, log_sigma in zip(batch, out.mu.tolist(), out.log_sigma.tolist(), strict=True):
            results.append({**entry, "mu": float(mu), "sigma": math.exp(log_sigma)})
        done += len(batch)
        ctx.progress(done, total=total, message=f"scored {len(results)} of {count} images")

    finished = score_request_finish(request_id=request.pk, results=results)
    best = finished.results[0] if finished.results else None
    return {"request": request.pk, "images": len(results),
            "best": {"index": best["index"], "mu": best["mu"], "image": best["image"]} if best else None}
