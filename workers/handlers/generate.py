"""The pair-generation job: for every (perfect, perturbed) prompt pair, generator and seed, render both
prompts with the same generator, seed and settings in one device batch, and store the pair.

Resumable: the checkpoint is (generator, last perturbed prompt id of a finished chunk); inside a chunk the
pairs already stored are skipped, and the unique constraint on (generator, perturbed prompt, seed) is what
guarantees no pair is stored twice. A batch that raises is recorded as failures (with its prompts) and the job
goes on; several failing batches in a row mean the generator is broken, and the job fails.
"""

import json
import logging
import time
import traceback
from itertools import islice
from pathlib import Path

from django.conf import settings as django_settings

from ml.generation.base import BackendCache, GeneratedImage, GenerationRequest
from ml.spatial.graph import SceneGraph
from spatiallab.generation.models import Backend, Generator
from spatiallab.generation.selectors import generation_work_ids, perturbed_for_generation
from spatiallab.generation.services import (
    GeneratedPair,
    generation_failures_record,
    pairs_existing,
    pairs_store,
)

logger = logging.getLogger(__name__)

CHUNK = 64  # perturbed prompts per checkpoint
MAX_CONSECUTIVE_FAILURES = 3

# One loaded pipeline per worker process, kept while jobs for the same generator keep coming.
BACKENDS = BackendCache()


def _batched(items: list, size: int):
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _edits(perturbed) -> list[dict]:
    return [{"rule": edit.rule.name if edit.rule else None, "rule_kind": edit.rule_kind,
             "relation_kind": edit.relation_kind, "relation_before": edit.relation_before,
             "relation_after": edit.relation_after, "span_before": edit.span_before, "span_after": edit.span_after}
            for edit in perturbed.edits.all()]


def _ground_truth(perturbed, winner: GeneratedImage, loser: GeneratedImage) -> tuple[dict, bool | None]:
    """For the scene renderer: does each image follow the *perfect* prompt? A good pair has a winner that
    does and a loser that does not; deliberate breaks make bad pairs on purpose."""
    from ml.render.backend import follows

    graph = SceneGraph.from_dict(perturbed.prompt.graph, text=perturbed.prompt.text)
    truth = {}
    for role, image in (("winner", winner), ("loser", loser)):
        verdict = follows(graph, image.meta)
        truth[role] = {**verdict, "broken": image.meta.get("broken", []),
                       "unsatisfied": image.meta.get("unsatisfied", [])}
    return truth, bool(truth["winner"]["follows"] and not truth["loser"]["follows"])


def _backend_settings(generator: Generator) -> dict:
    """A relative model or LoRA name means a folder below MODELS_DIR (the worker's model volume)."""
    settings = dict(generator.settings)
    if generator.backend == Backend.DIFFUSERS:
        for key in ("model", "lora"):
            value = settings.get(key) or ""
            candidate = Path(django_settings.MODELS_DIR) / value
            if value and not Path(value).is_absolute() and candidate.exists():
                settings[key] = str(candidate)
    return settings


def run_generate_pairs(ctx) -> dict:
    params = ctx.params
    by_id = {g.pk: g for g in Generator.objects.filter(pk__in=params["generators"])}
    generators = [by_id[pk] for pk in params["generators"] if pk in by_id]
    seeds = [params["seed"] + i for i in range(params["seeds"])]
    state = {"generator_index": 0, "after_id": 0, "made": 0, "skipped": 0, "failed": 0, "failed_batches": 0,
             "generate_seconds": 0.0, "store_seconds": 0.0, **ctx.checkpoint}
    work = generation_work_ids(params)
    if "until_id" not in state:
        # Pin the work to what existed at launch: perturbed prompts added later are not part of this job.
        state["until_id"] = work[-1] if work else 0
    work = [pk for pk in work if pk <= state["until_id"]]
    total = len(work) * len(generators) * len(seeds)
    done = lambda: state["made"] + state["skipped"] + state["failed"]  # noqa: E731
    ctx.progress(done(), total=total, message="resuming" if done() else "loading the generator",
                 checkpoint=state)
    started = time.monotonic()
    made_at_start = state["made"]

    for index in range(state["generator_index"], len(generators)):
        generator = generators[index]
        key = (generator.pk, json.dumps(generator.settings, sort_keys=True))
        backend = BACKENDS.get(key, generator.backend, _backend_settings(generator))
        pairs_per_batch = max(1, backend.batch_size // 2)
        consecutive_failures = 0
        remaining = [pk for pk in work if pk > state["after_id"]]
        for chunk_ids in _batched(remaining, CHUNK):
            chunk = perturbed_for_generation(chunk_ids)
            existing = pairs_existing(generator=generator, perturbed_ids=chunk_ids, seeds=seeds)
            todo = [(p, seed) for p in chunk for seed in seeds if (p.pk, seed) not in existing]
            state["skipped"] += len(chunk) * len(seeds) - len(todo)
            for batch in _batched(todo, pairs_per_batch):
                requests = []
                for perturbed, seed in batch:  # perfect then perturbed: same seed, same batch
                    requests.append(GenerationRequest(perturbed.prompt.text, seed, perturbed.prompt.graph or None))
                    requests.append(GenerationRequest(perturbed.text, seed, None))
                t0 = time.perf_counter()
                try:
                    images = backend.generate(requests)
                except Exception:
                    consecutive_failures += 1
                    state["failed"] += len(batch)
                    state["failed_batches"] += 1
                    generation_failures_record(job=ctx.claim.job, generator=generator, failures=batch,
                                               error=traceback.format_exc())
                    logger.exception("generation batch failed (%s in a row)", consecutive_failures)
                    if consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                        raise
                    continue
                consecutive_failures = 0
                generate_seconds = time.perf_counter() - t0
                items = []
                for number, (perturbed, seed) in enumerate(batch):
                    winner, loser = images[2 * number], images[2 * number + 1]
                    meta = {"backend": generator.backend, "generator": generator.name, "settings": generator.settings,
                            "seed": seed, "perfect_text": perturbed.prompt.text, "perturbed_text": perturbed.text,
                            "edits": _edits(perturbed),
                            "timings": {"generate_seconds": round(generate_seconds / len(batch), 4)}}
                    truth_ok = None
                    if generator.backend == Backend.SCENE_RENDERER:
                        meta["ground_truth"], truth_ok = _ground_truth(perturbed, winner, loser)
                        meta["render"] = {"winner": winner.meta, "loser": loser.meta}
                    else:
                        meta["backend_meta"] = winner.meta
                    items.append(GeneratedPair(perturbed_id=perturbed.pk, prompt_id=perturbed.prompt_id,
                                               n_edits=perturbed.n_edits, seed=seed, winner=winner.image,
                                               loser=loser.image, meta=meta, ground_truth_ok=truth_ok))
                t1 = time.perf_counter()
                stored = pairs_store(job=ctx.claim.job, generator=generator, pairs=items)
                state["made"] += stored
                state["skipped"] += len(batch) - stored
                state["generate_seconds"] += generate_seconds
                state["store_seconds"] += time.perf_counter() - t1
                elapsed = time.monotonic() - started
                per_minute = (state["made"] - made_at_start) / elapsed * 60 if elapsed > 0 else 0.0
                ctx.progress(done(), message=f"{state['made']} pairs · {per_minute:.1f} pairs/min · "
                                             f"{state['failed']} failed · {generator.name}")
            state["after_id"] = chunk_ids[-1]
            ctx.progress(done(), checkpoint=state)
        state["generator_index"], state["after_id"] = index + 1, 0
        ctx.progress(done(), checkpoint=state)

    return {"pairs": state["made"], "skipped_existing": state["skipped"], "failed": state["failed"],
            "failed_batches": state["failed_batches"], "perturbed_prompts": len(work),
            "generators": [g.pk for g in generators], "seeds": seeds,
            "generate_seconds": round(state["generate_seconds"], 3), "store_seconds": round(state["store_seconds"], 3)}
