"""Benchmark of verification on PostgreSQL (issue 5): claim and submit latency with 64 concurrent annotators
on a queue of 1,000,000 items against one of 10,000 items, and the agreement statistics over 1,000,000 verdicts.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/spatiallab_bench \\
        .venv/bin/python benchmarks/verification.py [--items 1000000] [--small 10000] [--annotators 64]
            [--seconds 30] [--think-ms 2000,250,0] [--verdicts 1000000]

What it does, on the database DATABASE_URL names (migrated first; it must be PostgreSQL):
1. makes --items pairs (rows only: one generator, 1,000 prompts x seeds, inserted with generate_series; the
   claim and submit paths never open image files) with a random renderer ground truth;
2. builds a queue over all of them and one over --small of them through `queue_create` (overlap 3, quorum 2,
   1,000 gold pairs served at a 10 % share), timing the build;
3. runs --annotators annotators (8 processes x 8 threads) for --seconds against each queue: each loops
   item_claim -> verdict_submit, with an exponential think time of the given mean between items (0: flat out);
   the latency of each service call is timed in the annotator's thread (the service call, its SQL round trip
   and result handling: server-side, no HTTP); the first 3 s are warm-up and not counted;
4. inserts --verdicts answered verdicts (3 per item, 64 annotators, random answers, some gold) into a third
   queue and times `queue_stats` (one query, then numpy).
Figures are recorded in docs/benchmarks.md. Re-running reuses the pairs and rebuilds the queues.
"""

import argparse
import multiprocessing
import os
import platform
import random
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "platform")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spatiallab.settings")
# Build every queue in this process, in one statement, to time the insert itself (the platform hands queues of
# more than VERIFICATION_SYNC_ITEMS pairs to a build job, which does the same work in chunks).
os.environ["VERIFICATION_SYNC_ITEMS"] = str(10**9)

GENERATOR = "bench-verification"
PROCESSES = 8
WARM_UP_S = 3.0
CHOICES = ["left", "right", "both", "neither", "unsure"]


def setup():
    import django

    django.setup()
    from django.db import connection

    if connection.vendor != "postgresql":
        sys.exit("This benchmark measures PostgreSQL: set DATABASE_URL=postgres://...")


def ensure_pairs(count: int) -> int:
    """The benchmark generator with at least `count` pairs (made once, reused by later runs)."""
    from django.db import connection, transaction

    from spatiallab.generation.models import Generator, Pair
    from spatiallab.prompts.models import PerturbedPrompt, Prompt, PromptSet

    generator, _ = Generator.objects.get_or_create(name=GENERATOR, defaults={"backend": "scene-renderer"})
    have = Pair.objects.filter(generator=generator).count()
    if have >= count:
        return generator.pk
    print(f"making {count:,} pairs (once) ...", flush=True)
    start = time.perf_counter()
    n_prompts = 1000
    seeds = -(-count // n_prompts)
    with transaction.atomic():
        Pair.objects.filter(generator=generator).delete()
        prompt_set, _ = PromptSet.objects.get_or_create(name=GENERATOR, defaults={"source": "benchmark"})
        if not prompt_set.prompts.exists():
            Prompt.objects.bulk_create(Prompt(prompt_set=prompt_set, position=i, text=f"a red mug left of a laptop {i}",
                                              normalized_text=f"a red mug left of a laptop {i}", relation_count=1)
                                       for i in range(n_prompts))
            PerturbedPrompt.objects.bulk_create(
                PerturbedPrompt(prompt=p, text=f"a red mug right of a laptop {p.position}",
                                normalized_text=f"a red mug right of a laptop {p.position}", n_edits=1, seed=0)
                for p in prompt_set.prompts.all())
        with connection.cursor() as cursor:
            cursor.execute(f"""
                INSERT INTO {Pair._meta.db_table} (generator_id, prompt_id, perturbed_id, seed, n_edits,
                    winner_image, loser_image, winner_thumb, loser_thumb, width, height, meta, ground_truth_ok,
                    created_at)
                SELECT %s, pp.prompt_id, pp.id, s, 1, 'bench/w.png', 'bench/l.png', 'bench/wt.png', 'bench/lt.png',
                       512, 512, '{{}}'::jsonb, random() < 0.8, now()
                FROM {PerturbedPrompt._meta.db_table} pp
                JOIN {Prompt._meta.db_table} p ON p.id = pp.prompt_id AND p.prompt_set_id = %s
                CROSS JOIN generate_series(0, %s - 1) AS s
                ORDER BY s, pp.id
                LIMIT %s""", [generator.pk, prompt_set.pk, seeds, count])
            cursor.execute(f"ANALYZE {Pair._meta.db_table}")
    print(f"  {time.perf_counter() - start:.1f} s", flush=True)
    return generator.pk


def _drop_queue(name: str) -> None:
    """Deletes a benchmark queue in SQL (Django's delete collector would load a million rows first)."""
    from django.db import connection, transaction

    from spatiallab.verification.models import VerificationQueue

    queue = VerificationQueue.objects.filter(name=name).first()
    if queue is None:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        for table in ("verification_assignment", "verification_adjudication", "verification_queueitem",
                      "verification_verificationqueue_annotators"):
            column = "item_id IN (SELECT id FROM verification_queueitem WHERE queue_id = %s)" if (
                table == "verification_adjudication") else (
                "verificationqueue_id = %s" if table.endswith("annotators") else "queue_id = %s")
            cursor.execute(f"DELETE FROM {table} WHERE {column}", [queue.pk])
        cursor.execute("DELETE FROM verification_verificationqueue WHERE id = %s", [queue.pk])


def build_queue(name: str, generator_id: int, limit: int, gold: int) -> int:
    from django.db import connection

    from spatiallab.verification.services import queue_create

    _drop_queue(name)
    start = time.perf_counter()
    build = queue_create(name=name, overlap=3, quorum=2, lease_minutes=10, selection={"generator": generator_id},
                         gold_count=gold, gold_share=0.1 if gold else 0.0, limit=limit)
    elapsed = time.perf_counter() - start
    with connection.cursor() as cursor:  # as autovacuum would, before annotators arrive
        cursor.execute("VACUUM ANALYZE verification_queueitem")
        cursor.execute("VACUUM ANALYZE verification_assignment")
    print(f"queue {name}: {build.items:,} items + {build.gold:,} gold built in {elapsed:.1f} s", flush=True)
    return build.queue.pk


def annotator_ids(count: int) -> list[int]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    group, _ = Group.objects.get_or_create(name="annotator")
    ids = []
    for i in range(count):
        user, created = get_user_model().objects.get_or_create(username=f"bench-annotator-{i}")
        if created:
            user.groups.add(group)
        ids.append(user.pk)
    return ids


def _annotate(queue_id: int, user_ids: list[int], seconds: float, think_ms: float, out) -> None:
    """One process: a thread per annotator, each claiming and answering until the time is up."""
    setup()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from spatiallab.verification.models import VerificationQueue
    from spatiallab.verification.services import item_claim, verdict_submit

    queue = VerificationQueue.objects.get(pk=queue_id)
    users = list(get_user_model().objects.filter(pk__in=user_ids))
    connection.close()
    results = []
    lock = threading.Lock()
    start = time.perf_counter()

    def run(user, seed):
        rng = random.Random(seed)
        claims, submits = [], []
        try:
            while time.perf_counter() - start < seconds:
                t0 = time.perf_counter()
                lease = item_claim(queue=queue, user=user, rng=rng)
                t1 = time.perf_counter()
                if lease is None:
                    break
                verdict_submit(user=user, assignment_id=lease.assignment_id, choice=rng.choice(CHOICES),
                               seconds=rng.uniform(1, 8), client_key=f"{user.pk}-{lease.assignment_id}")
                t2 = time.perf_counter()
                if t0 - start > WARM_UP_S:
                    claims.append(t1 - t0)
                    submits.append(t2 - t1)
                if think_ms:
                    time.sleep(rng.expovariate(1000.0 / think_ms))
        finally:
            connection.close()
        with lock:
            results.append((claims, submits))

    threads = [threading.Thread(target=run, args=(user, user.pk)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out.put(([c for claims, _ in results for c in claims], [s for _, submits in results for s in submits]))


def load(queue_id: int, users: list[int], seconds: float, think_ms: float) -> dict:
    import numpy as np
    from django.db import connections

    connections.close_all()
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    groups = [users[i::PROCESSES] for i in range(PROCESSES)]
    procs = [context.Process(target=_annotate, args=(queue_id, group, seconds, think_ms, out)) for group in groups]
    for proc in procs:
        proc.start()
    claims, submits = [], []
    for _ in procs:
        c, s = out.get()
        claims += c
        submits += s
    for proc in procs:
        proc.join()
    measured = seconds - WARM_UP_S
    claims_ms, submits_ms = np.array(claims) * 1000, np.array(submits) * 1000
    return {
        "items_per_s": len(claims) / measured,
        "claim": (np.percentile(claims_ms, 50), np.percentile(claims_ms, 99), len(claims)),
        "submit": (np.percentile(submits_ms, 50), np.percentile(submits_ms, 99), len(submits)),
    }


def stats_queue(generator_id: int, verdicts: int, users: list[int]) -> int:
    """A queue whose items already hold `verdicts` answers (3 each), inserted in SQL."""
    from django.db import connection

    from spatiallab.verification.models import Assignment, VerificationQueue

    items = verdicts // 3
    existing = VerificationQueue.objects.filter(name="bench-stats").first()
    if existing and Assignment.objects.filter(queue=existing).count() >= verdicts:
        print("stats queue: reusing the verdicts of an earlier run", flush=True)
        return existing.pk
    queue_id = build_queue("bench-stats", generator_id, items, gold=300)
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("""
            WITH items AS (SELECT id, is_gold, row_number() OVER (ORDER BY id) AS n
                           FROM verification_queueitem WHERE queue_id = %(q)s),
                 slots AS (SELECT items.id, items.is_gold, items.n, k FROM items CROSS JOIN generate_series(0, 2) k),
                 picked AS (SELECT *, (%(users)s::bigint[])[1 + ((n * 7 + k * 13) %% %(nu)s)] AS annotator,
                                   random() < 0.5 AS winner_left, floor(random() * 5)::int AS c FROM slots)
            INSERT INTO verification_assignment (queue_id, item_id, annotator_id, is_gold, winner_left, status,
                leased_at, expires_at, choice, answer, seconds, skip_reason, client_key, answered_at)
            SELECT %(q)s, id, annotator, is_gold, winner_left, 'answered', now(), now(),
                   (ARRAY['left','right','both','neither','unsure'])[c + 1],
                   CASE c WHEN 0 THEN CASE WHEN winner_left THEN 'winner' ELSE 'loser' END
                          WHEN 1 THEN CASE WHEN winner_left THEN 'loser' ELSE 'winner' END
                          ELSE (ARRAY['left','right','both','neither','unsure'])[c + 1] END,
                   1 + random() * 10, '', NULL, now() - (n %% 720) * interval '1 minute'
            FROM picked
            ON CONFLICT DO NOTHING""", {"q": queue_id, "users": users, "nu": len(users)})
        cursor.execute("""
            UPDATE verification_queueitem i SET taken = 3, done = 3, open = false,
                status = CASE WHEN random() < 0.7 THEN 'verified' WHEN random() < 0.5 THEN 'rejected'
                              ELSE 'disputed' END
            WHERE queue_id = %s AND NOT is_gold""", [queue_id])
        cursor.execute("ANALYZE verification_assignment")
        cursor.execute("SELECT count(*) FROM verification_assignment WHERE queue_id = %s", [queue_id])
        stored = cursor.fetchone()[0]
    print(f"stats queue: {stored:,} verdicts inserted in {time.perf_counter() - start:.1f} s", flush=True)
    return queue_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--annotators", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--think-ms", default="2000,250,0",
                        help="comma-separated mean think times to run (2000: a human pace; 0: flat out)")
    parser.add_argument("--verdicts", type=int, default=1_000_000)
    args = parser.parse_args()

    setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    from spatiallab.verification.models import VerificationQueue
    from spatiallab.verification.selectors import queue_stats

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server = cursor.fetchone()[0]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, PostgreSQL {server}", flush=True)
    generator_id = ensure_pairs(max(args.items, args.verdicts // 3) + 1000)
    users = annotator_ids(args.annotators)
    big = build_queue("bench-large", generator_id, args.items, gold=1000)
    small = build_queue("bench-small", generator_id, args.small, gold=1000)

    rows = []
    for think in [float(t) for t in args.think_ms.split(",")]:
        for queue_id, size in ((small, args.small), (big, args.items)):
            result = load(queue_id, users, args.seconds, think)
            rows.append((size, think, result))
            c50, c99, n = result["claim"]
            s50, s99, _ = result["submit"]
            print(f"{size:>9,} items, {args.annotators} annotators, think {think:>4.0f} ms: "
                  f"{result['items_per_s']:7.0f} items/s | claim p50 {c50:5.2f} ms p99 {c99:6.2f} ms | "
                  f"submit p50 {s50:5.2f} ms p99 {s99:6.2f} ms | {n:,} items", flush=True)
    for think in {t for _, t, _ in rows}:
        by_size = {size: result for size, t, result in rows if t == think}
        ratio = by_size[args.items]["claim"][0] / by_size[args.small]["claim"][0]
        print(f"think {think:.0f} ms: claim p50 at {args.items:,} items / at {args.small:,} items = {ratio:.2f}x")

    stats_id = stats_queue(generator_id, args.verdicts, users)
    queue = VerificationQueue.objects.get(pk=stats_id)
    timings = []
    for _ in range(3):
        start = time.perf_counter()
        stats = queue_stats(queue)
        timings.append(time.perf_counter() - start)
    print(f"queue_stats over {stats.verdicts + sum(p.gold_answered for p in stats.annotators):,} verdicts, "
          f"{len(stats.annotators)} annotators: {min(timings):.2f} s best, {max(timings):.2f} s worst of 3 "
          f"(Fleiss {stats.fleiss_kappa:.3f}, alpha {stats.krippendorff_alpha:.3f})")


if __name__ == "__main__":
    main()
