"""Benchmark of dataset export on PostgreSQL (issue 6): JSONL export of a frozen version of 1,000,000 entries,
rows per second and peak memory, next to PostgreSQL's own COPY ... TO STDOUT of the same rows (the ceiling).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/spatiallab_bench \\
        .venv/bin/python benchmarks/datasets_export.py [--sizes 100000,1000000] [--repeats 3]

What it does, on the database DATABASE_URL names (migrated first; it must be PostgreSQL):
1. makes the pairs (rows only, as benchmarks/verification.py does; reused by later runs) and, per size, a frozen
   version of that many entries whose lines are real canonical entries (about 1 KB each: a 25-word prompt, its
   perturbed copy, two edits, image paths with SHA-256s, verification) written with COPY, hashed and frozen
   the way the build job freezes a version (made once, reused);
2. times `COPY (SELECT line ... ORDER BY pair_id) TO STDOUT` read by psycopg (best of --repeats): the rate at
   which the database hands the rows out, with no hashing and no Python per row;
3. runs the export in a fresh process, `write_export(version, "jsonl")` into a file (the same function the REST
   stream, the export job and the export_dataset command use: keyset-paginated reads, the running content hash
   checked at the end), best of --repeats, and reads that process's peak resident memory (ru_maxrss) and its
   memory after Django was set up, before the export.
Figures are recorded in docs/benchmarks.md.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spatiallab.settings")

SENTENCE = ("a red mug is left of a laptop and a small green plant stands behind the wooden chair while two "
            "blue books lie on top of the white desk near the window")
WORDS = SENTENCE.split(" ")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _entry(pair_id: int, prompt_id: int, perturbed_id: int, seed: int) -> dict:
    from spatiallab.datasets.canonical import split_for

    prompt = " ".join(WORDS[(prompt_id + i) % len(WORDS)] for i in range(25))
    edit = {"rule_kind": "swap", "relation_kind": "horizontal", "before": ["mug", "left of", "laptop"],
            "after": ["mug", "right of", "laptop"]}
    return {
        "pair_id": pair_id, "split": split_for(prompt, {"train": 0.8, "validation": 0.1, "test": 0.1}, "bench"),
        "prompt": prompt, "perturbed_prompt": prompt.replace("left of", "right of"),
        "prompt_id": prompt_id, "perturbed_id": perturbed_id, "n_edits": 2, "edits": [edit, {**edit,
                                                                                          "rule_kind": "flip"}],
        "category": "indoor", "relation_count": 5,
        "chosen": {"path": f"pairs/g1/{perturbed_id % 1000:03d}/{perturbed_id}-{seed}-w.png",
                   "sha256": f"{pair_id:064x}"},
        "rejected": {"path": f"pairs/g1/{perturbed_id % 1000:03d}/{perturbed_id}-{seed}-l.png",
                     "sha256": f"{pair_id + 1:064x}"},
        "width": 512, "height": 512, "generator": "bench-verification", "generator_id": 1,
        "backend": "scene-renderer", "seed": seed,
        "verification": {"decision": "consensus", "agreement": 1.0, "answers": 3, "queues": [1]},
    }


def ensure_version(size: int):
    """A frozen version of `size` entries over the benchmark pairs (made once)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from benchmarks.verification import ensure_pairs
    from spatiallab.datasets.canonical import canonical_line
    from spatiallab.datasets.models import DatasetVersion, VersionStatus
    from spatiallab.datasets.services import content_hash_of
    from spatiallab.generation.models import Pair

    name = f"bench-export-{size}"
    version = DatasetVersion.objects.filter(name=name, status=VersionStatus.FROZEN, entry_count=size).first()
    if version:
        return version
    generator_id = ensure_pairs(size)
    print(f"making a frozen version of {size:,} entries (once) ...", flush=True)
    start = time.perf_counter()
    with connection.cursor() as cursor:  # a half-made earlier attempt (never frozen, so no guard applies)
        cursor.execute("DELETE FROM datasets_datasetentry WHERE version_id IN "
                       "(SELECT id FROM datasets_datasetversion WHERE name = %s)", [name])
        cursor.execute("DELETE FROM datasets_datasetversion WHERE name = %s", [name])
    version = DatasetVersion.objects.create(name=name, criteria={"queues": []},
                                            ratios={"train": 0.8, "validation": 0.1, "test": 0.1})
    pairs = Pair.objects.filter(generator_id=generator_id).order_by("pk").values_list(
        "pk", "prompt_id", "perturbed_id", "seed")
    after, written = 0, 0
    with transaction.atomic(), connection.cursor() as cursor:
        while written < size:  # in chunks: the connection cannot run a query while a COPY is open on it
            chunk = list(pairs.filter(pk__gt=after)[:min(50_000, size - written)])
            if not chunk:
                break
            with cursor.cursor.copy("COPY datasets_datasetentry (version_id, pair_id, split, line) FROM STDIN") as copy:
                for pair_id, prompt_id, perturbed_id, seed in chunk:
                    entry = _entry(pair_id, prompt_id, perturbed_id, seed)
                    copy.write_row((version.pk, pair_id, entry["split"], canonical_line(entry).decode()))
            after, written = chunk[-1][0], written + len(chunk)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE datasets_datasetentry")
    digest = content_hash_of(version.pk)
    DatasetVersion.objects.filter(pk=version.pk).update(
        status=VersionStatus.FROZEN, content_hash=digest, entry_count=size, frozen_at=timezone.now(),
        readme=f"# {name}\n", card={"split": {}})
    print(f"  {time.perf_counter() - start:.1f} s", flush=True)
    return DatasetVersion.objects.get(pk=version.pk)


def copy_rate(version_id: int) -> tuple[float, int]:
    """Seconds and bytes of COPY (SELECT line ... ORDER BY pair_id) TO STDOUT, read block by block."""
    from django.db import connection

    connection.ensure_connection()
    raw = connection.connection
    start = time.perf_counter()
    size = 0
    with raw.cursor() as cursor, cursor.copy(
            f"COPY (SELECT line FROM datasets_datasetentry WHERE version_id = {int(version_id)} ORDER BY pair_id) "
            f"TO STDOUT") as copy:
        for block in copy:
            size += len(block)
    return time.perf_counter() - start, size


def child(version_id: int, output: str) -> None:
    """In a fresh process: export to `output`, print seconds, size and memory as JSON."""
    import django

    django.setup()
    from spatiallab.datasets.exports import write_export
    from spatiallab.datasets.models import DatasetVersion

    version = DatasetVersion.objects.get(pk=version_id)
    before = _rss_mb()
    start = time.perf_counter()
    with open(output, "wb") as handle:
        size, digest = write_export(version, "jsonl", "", handle)
    seconds = time.perf_counter() - start
    assert digest == version.content_hash, "the export's SHA-256 must equal the content hash"
    print(json.dumps({"seconds": seconds, "bytes": size, "rss_before_mb": before, "peak_rss_mb": _rss_mb()}))


def export_run(version_id: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run([sys.executable, __file__, "--child", str(version_id), "--output", f"{tmp}/x.jsonl"],
                             capture_output=True, text=True, check=True, env=os.environ)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.output)
        return
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("This benchmark measures PostgreSQL: set DATABASE_URL=postgres://...")
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server = cursor.fetchone()[0]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"PostgreSQL {server}")
    sizes = [int(s) for s in args.sizes.split(",")]
    # The pairs for the largest size first: the pairs of a version cannot be deleted (and remade) later.
    from benchmarks.verification import ensure_pairs

    ensure_pairs(max(sizes))
    for size in sizes:
        version = ensure_version(size)
        copies = [copy_rate(version.pk) for _ in range(args.repeats)]
        copy_s = min(s for s, _ in copies)
        runs = [export_run(version.pk) for _ in range(args.repeats)]
        best = min(runs, key=lambda r: r["seconds"])
        times = ", ".join(f"{run['seconds']:.2f}" for run in runs)
        print(f"\n{size:,} entries ({copies[0][1] / size:,.0f} bytes per line, {copies[0][1] / 1e6:,.0f} MB):")
        print(f"  COPY ... TO STDOUT (ceiling): {copy_s:6.2f} s  {size / copy_s:>10,.0f} rows/s")
        print(f"  JSONL export (write_export):  {best['seconds']:6.2f} s  {size / best['seconds']:>10,.0f} rows/s  "
              f"({best['seconds'] / copy_s:.2f}x the COPY time; runs: {times} s)")
        print(f"  export process memory: {best['rss_before_mb']:.0f} MB after set-up, peak "
              f"{max(r['peak_rss_mb'] for r in runs):.0f} MB")


if __name__ == "__main__":
    main()
