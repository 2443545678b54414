"""Verification: building queues, serving items to annotators, storing verdicts, consensus and adjudication.

The annotator's actions (claim, submit, skip) are one SQL statement each on PostgreSQL: data-modifying CTEs
that check and change the assignment and the item's counters together, with `FOR UPDATE SKIP LOCKED` on the
claimed item so that concurrent annotators never wait on each other. The guarantees hold in the database, not
in Python:

- an item's `taken` (live leases + answers) never passes the queue's overlap: a claim only picks items whose
  `open` flag (taken < overlap) is set, under the row lock, and sets it in the same statement;
- an annotator never holds two rows for one item (unique constraint) nor two live leases in a queue (partial
  unique index): asking twice returns the same lease;
- a verdict is stored once: the submission only changes a row still `leased`, and a retry carrying the same
  client key finds the stored verdict instead of failing.

SQLite (the embedded default, one machine) runs the same steps with the ORM inside an IMMEDIATE transaction,
which serialises writers.
"""

from __future__ import annotations

import random
import weakref
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Exists, F, OuterRef, Value, When
from django.utils import timezone

from spatiallab.generation.models import Pair
from spatiallab.generation.selectors import pairs_filtered
from spatiallab.verification.models import (
    Adjudication,
    Answer,
    Assignment,
    AssignmentStatus,
    Choice,
    ItemStatus,
    QueueItem,
    QueueStatus,
    VerificationQueue,
)

RANK_MAX = 2**31 - 1
BROKEN_IMAGE = "broken image"


class VerificationError(Exception):
    """An annotator action that cannot be done now; `code` is stable for API clients."""

    def __init__(self, message: str, *, code: str, status: int = 409):
        super().__init__(message)
        self.code = code
        self.status = status


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _statement():
    """Outside a transaction one statement is atomic on its own (no BEGIN/COMMIT round trips); inside one, a
    savepoint lets a failed statement be caught without breaking the caller's transaction."""
    return transaction.atomic() if connection.in_atomic_block else nullcontext()


class _Prepared:
    """A PostgreSQL statement prepared once per database connection (PREPARE) and run with EXECUTE.

    The annotator's statements are CTEs that cost PostgreSQL more to plan (1-2 ms, more on a table with many
    dead index entries) than to run (about 0.5 ms); prepared, they skip planning. Each connection prepares on
    first use (tracked per connection object, so a reconnect prepares again). Set
    VERIFICATION_PREPARED_STATEMENTS=0 behind a pooler that shares connections per transaction (PgBouncer's
    transaction mode), where a session's prepared statements may not be there."""

    _done: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __init__(self, name: str, sql: str, params: Sequence[tuple[str, str]]):
        self.name, self.sql, self.order = name, sql, [param for param, _ in params]
        text = sql
        for position, (param, _) in enumerate(params, start=1):
            text = text.replace(f"%({param})s", f"${position}")
        self.prepare_sql = f"PREPARE {name} ({', '.join(kind for _, kind in params)}) AS {text}"
        self.execute_sql = f"EXECUTE {name} ({', '.join(['%s'] * len(params))})"

    def execute(self, cursor, values: dict) -> None:
        if not settings.VERIFICATION_PREPARED_STATEMENTS:
            cursor.execute(self.sql, values)
            return
        raw = connection.connection
        prepared = self._done.setdefault(raw, set())
        if self.name not in prepared:
            cursor.execute(self.prepare_sql)  # not undone by a rollback: prepared statements live per session
            prepared.add(self.name)
        cursor.execute(self.execute_sql, [values[param] for param in self.order])


# --- Queues ---------------------------------------------------------------------------------------------------

SELECTION_KEYS = ("job", "generator", "rule", "n_edits", "prompt_set")


@dataclass(frozen=True)
class QueueBuild:
    queue: VerificationQueue
    items: int
    gold: int


def _clean_selection(selection: dict | None) -> dict:
    selection = {key: value for key, value in (selection or {}).items() if value not in (None, "", [])}
    unknown = sorted(set(selection) - set(SELECTION_KEYS))
    if unknown:
        raise ValidationError({"selection": f"Unknown selection keys: {', '.join(unknown)}; known: "
                                            f"{', '.join(SELECTION_KEYS)}."})
    return selection


def _check_queue_fields(errors: dict, *, overlap, quorum, lease_minutes, gold_share) -> None:
    if overlap is not None and not 1 <= overlap <= 20:
        errors["overlap"] = ["Overlap must be between 1 and 20 annotators per pair."]
    if quorum is not None and overlap is not None and not 1 <= quorum <= overlap:
        errors["quorum"] = [f"Quorum must be between 1 and the overlap ({overlap})."]
    if lease_minutes is not None and not 1 <= lease_minutes <= 24 * 60:
        errors["lease_minutes"] = ["Lease time must be between 1 and 1440 minutes."]
    if gold_share is not None and not 0 <= gold_share <= 0.5:
        errors["gold_share"] = ["Gold share must be between 0 and 0.5."]


def _insert_items(queue: VerificationQueue, pair_ids_sql: tuple[str, list], *, is_gold: bool,
                  gold_verified_sql: str = "NULL") -> int:
    """Adds the pairs a query selects as items, in one INSERT ... SELECT with a random serving rank each."""
    select_sql, params = pair_ids_sql
    rank = ("floor(random() * 2147483647)::int" if _postgres() else "abs(random() % 2147483647)")
    sql = (f"INSERT INTO {QueueItem._meta.db_table} "
           "(queue_id, pair_id, rank, is_gold, gold_verified, taken, done, open, status, flags) "
           f"SELECT %s, p.id, {rank}, %s, {gold_verified_sql}, 0, 0, %s, %s, 0 "
           f"FROM {Pair._meta.db_table} p WHERE p.id IN ({select_sql}) "
           "ON CONFLICT DO NOTHING")
    with connection.cursor() as cursor:
        cursor.execute(sql, [queue.pk, is_gold, True, ItemStatus.PENDING, *params])
        return cursor.rowcount


def queue_create(*, name: str, instructions: str = "", overlap: int = 3, quorum: int | None = None,
                 lease_minutes: int = 10, gold_share: float = 0.0, priority: int = 0,
                 annotators: Iterable | None = None, selection: dict | None = None, gold_count: int = 0,
                 gold: Sequence[tuple[int, bool]] | None = None, limit: int | None = None,
                 created_by=None) -> QueueBuild:
    """A queue over the pairs that `selection` picks (pairs_filtered's keys), built in one transaction.

    Gold pairs come from `gold` ((pair id, verified) with the known answer) or, with `gold_count`, are drawn
    from the selected pairs whose renderer ground truth is known; gold pairs are not also regular items."""
    name = (name or "").strip()
    quorum = quorum if quorum is not None else overlap // 2 + 1
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["A queue needs a name."]
    elif VerificationQueue.objects.filter(name=name).exists():
        errors["name"] = [f"A queue named {name!r} exists already."]
    _check_queue_fields(errors, overlap=overlap, quorum=quorum, lease_minutes=lease_minutes, gold_share=gold_share)
    if gold_count < 0:
        errors["gold_count"] = ["The number of gold pairs cannot be negative."]
    if limit is not None and limit < 1:
        errors["limit"] = ["The limit must be at least 1."]
    try:
        selection = _clean_selection(selection)
    except ValidationError as exc:
        errors.update(exc.message_dict)
        selection = {}
    if errors:
        raise ValidationError(errors)

    pairs = pairs_filtered(Pair.objects.all(), **selection)
    gold = list(gold or ())
    if gold:
        known = set(Pair.objects.filter(pk__in=[pk for pk, _ in gold]).values_list("pk", flat=True))
        missing = [pk for pk, _ in gold if pk not in known]
        if missing:
            raise ValidationError({"gold": f"Unknown pairs: {', '.join(map(str, missing[:10]))}."})
        if len({pk for pk, _ in gold}) != len(gold):
            raise ValidationError({"gold": "A pair is listed twice."})
    elif gold_count:
        drawn = list(pairs.filter(ground_truth_ok__isnull=False).order_by("?").values_list("pk", "ground_truth_ok")
                     [:gold_count])
        if len(drawn) < gold_count:
            raise ValidationError({"gold_count": f"Only {len(drawn)} of the selected pairs have a known ground "
                                                 f"truth; ask for at most that many gold pairs."})
        gold = drawn
    if gold_share > 0 and not gold:
        raise ValidationError({"gold_share": "A gold share needs gold pairs (set the number of gold pairs)."})

    gold_ids = [pk for pk, _ in gold]
    regular = pairs.exclude(pk__in=gold_ids).order_by("pk").values("pk")
    if limit:
        regular = regular[:limit]
    count = regular.count()
    if count == 0:
        raise ValidationError({"selection": "No pairs match this selection."})
    build_by_job = count > settings.VERIFICATION_SYNC_ITEMS
    with transaction.atomic():
        queue = VerificationQueue.objects.create(
            name=name, instructions=instructions, overlap=overlap, quorum=quorum, lease_minutes=lease_minutes,
            gold_share=gold_share, priority=priority, selection={**selection, **({"limit": limit} if limit else {})},
            status=QueueStatus.BUILDING if build_by_job else QueueStatus.ACTIVE, created_by=created_by)
        if annotators:
            queue.annotators.set(annotators)
        n_gold = 0
        if gold:
            n_gold = _insert_items(queue, (", ".join(["%s"] * len(gold_ids)), gold_ids), is_gold=True)
            verified = [pk for pk, ok in gold if ok]
            QueueItem.objects.filter(queue=queue, is_gold=True).update(
                gold_verified=Case(When(pair_id__in=verified, then=Value(True)), default=Value(False)))
        if build_by_job:
            # A million items take half a minute to insert: too long for a request. The job adds them in
            # chunks with progress on the dashboard; the queue serves nothing until it is done.
            from spatiallab.jobs.services import job_create

            queue.build_job = job_create(kind="build_queue", params={"queue": queue.pk}, created_by=created_by)
            queue.save(update_fields=["build_job"])
        else:
            _insert_items(queue, regular.query.sql_with_params(), is_gold=False)
    return QueueBuild(queue=queue, items=count, gold=n_gold)


def _regular_pairs(queue: VerificationQueue):
    """The queue's selection in pair-id order, without its gold pairs (the same pairs queue_create counted)."""
    selection = {key: value for key, value in queue.selection.items() if key in SELECTION_KEYS}
    gold = QueueItem.objects.filter(queue=queue, is_gold=True).values("pair_id")
    return pairs_filtered(Pair.objects.all(), **selection).exclude(pk__in=gold).order_by("pk")


def queue_build_total(*, queue: VerificationQueue) -> int:
    total = _regular_pairs(queue).count()
    return min(total, queue.selection["limit"]) if queue.selection.get("limit") else total


def queue_build_items(*, queue: VerificationQueue, after: int, size: int) -> tuple[int, int]:
    """Adds the next `size` selected pairs with an id above `after` as items, skipping pairs that are items
    already (a resumed job repeats its last chunk harmlessly). Returns (items added, last pair id read)."""
    ids = list(_regular_pairs(queue).filter(pk__gt=after).values_list("pk", flat=True)[:size])
    if not ids:
        return 0, after
    return _insert_items(queue, (", ".join(["%s"] * len(ids)), ids), is_gold=False), ids[-1]


def queue_build_finish(*, queue: VerificationQueue) -> None:
    VerificationQueue.objects.filter(pk=queue.pk, status=QueueStatus.BUILDING).update(status=QueueStatus.ACTIVE)


EDITABLE_FIELDS = ("name", "instructions", "lease_minutes", "gold_share", "priority", "status", "overlap", "quorum")


def queue_reorder(*, queue_id: int, pair_ids: Sequence[int], order_by: str = "", checkpoint_id: int | None = None,
                  batch: int = 2000) -> int:
    """Serves the queue's open regular items in the order of `pair_ids` (the rest after them, in their old order)
    by rewriting their ranks 0, 1, 2, ...: "next item" stays an index range scan. Items added later draw random
    ranks up to RANK_MAX, so they come after the ordered ones. Records the order on the queue; returns the
    number of items ranked."""
    position = {pair_id: index for index, pair_id in enumerate(pair_ids)}
    items = list(QueueItem.objects.filter(queue_id=queue_id, open=True, is_gold=False)
                 .values_list("pk", "pair_id", "rank"))
    items.sort(key=lambda item: (position.get(item[1], len(position)), item[2], item[0]))
    for start in range(0, len(items), batch):
        with transaction.atomic():
            QueueItem.objects.bulk_update(
                [QueueItem(pk=pk, rank=start + offset) for offset, (pk, _, _) in enumerate(items[start:start + batch])],
                ["rank"])
    VerificationQueue.objects.filter(pk=queue_id).update(order_by=order_by, order_checkpoint_id=checkpoint_id)
    return len(items)


def queue_update(*, queue: VerificationQueue, annotators: Iterable | None = None, **changes) -> VerificationQueue:
    """Edits a queue. Overlap and quorum are fixed once the queue has an answer (the consensus of answered
    items depends on them); a different design is a new queue."""
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValidationError({name: "This field cannot be changed." for name in unknown})
    errors: dict[str, list[str]] = {}
    if "name" in changes:
        changes["name"] = (changes["name"] or "").strip()
        if not changes["name"]:
            errors["name"] = ["A queue needs a name."]
        elif VerificationQueue.objects.filter(name=changes["name"]).exclude(pk=queue.pk).exists():
            errors["name"] = [f"A queue named {changes['name']!r} exists already."]
    if "status" in changes and changes["status"] != queue.status:
        if changes["status"] not in QueueStatus.values or changes["status"] == QueueStatus.BUILDING:
            settable = [status for status in QueueStatus.values if status != QueueStatus.BUILDING]
            errors["status"] = [f"Status must be one of {', '.join(settable)}."]
        elif queue.status == QueueStatus.BUILDING:
            errors["status"] = ["The queue is still being built; it opens when its build job is done."]
    design = {key for key in ("overlap", "quorum")
              if key in changes and changes[key] != getattr(queue, key)}
    if design and Assignment.objects.filter(queue=queue).exists():
        for key in design:
            errors[key] = ["The queue has started; overlap and quorum can no longer change."]
    _check_queue_fields(errors, overlap=changes.get("overlap", queue.overlap),
                        quorum=changes.get("quorum", queue.quorum), lease_minutes=changes.get("lease_minutes"),
                        gold_share=changes.get("gold_share"))
    if changes.get("gold_share") and not queue.items.filter(is_gold=True).exists():
        errors["gold_share"] = ["The queue has no gold pairs."]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        for key, value in changes.items():
            setattr(queue, key, value)
        if changes:
            queue.save(update_fields=list(changes))
        if annotators is not None:
            queue.annotators.set(annotators)
    return queue


# --- Annotator actions ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    assignment_id: int
    item_id: int
    pair_id: int
    winner_left: bool
    expires_at: datetime
    resumed: bool  # the annotator's existing lease (a reload), not a new one


@dataclass(frozen=True)
class Submitted:
    assignment_id: int
    item_id: int
    answer: str
    replayed: bool  # a retry of a verdict stored before
    decided: str | None  # the item's status when this verdict completed it


_A = Assignment._meta.db_table
_I = QueueItem._meta.db_table
_Q = VerificationQueue._meta.db_table

_CLAIM_SQL = f"""
WITH mine AS (
    SELECT a.id, a.item_id, a.winner_left, a.expires_at FROM {_A} a
    WHERE a.annotator_id = %(user)s AND a.queue_id = %(queue)s AND a.status = 'leased'
), candidate AS (
    {{candidate}}
), leased AS (
    INSERT INTO {_A} (queue_id, item_id, annotator_id, is_gold, winner_left, status, leased_at, expires_at,
                      choice, answer, skip_reason)
    SELECT %(queue)s, candidate.id, %(user)s, %(gold)s, %(winner_left)s, 'leased', now(),
           now() + %(lease)s * interval '1 minute', '', '', ''
    FROM candidate
    ON CONFLICT DO NOTHING
    RETURNING id, item_id, winner_left, expires_at
), counted AS (
    UPDATE {_I} i SET taken = i.taken + 1, open = i.taken + 1 < %(overlap)s
    FROM leased WHERE i.id = leased.item_id AND NOT %(gold)s
)
SELECT l.id, l.item_id, i.pair_id, l.winner_left, l.expires_at, l.resumed
FROM (SELECT id, item_id, winner_left, expires_at, true AS resumed FROM mine
      UNION ALL SELECT id, item_id, winner_left, expires_at, false FROM leased) l
JOIN {_I} i ON i.id = l.item_id
"""
_CANDIDATE = f"""
    SELECT i.id FROM {_I} i
    WHERE NOT EXISTS (SELECT 1 FROM mine) AND i.queue_id = %(queue)s AND {{branch}}
      AND NOT EXISTS (SELECT 1 FROM {_A} x WHERE x.item_id = i.id AND x.annotator_id = %(user)s)
    ORDER BY i.rank LIMIT 1 {{lock}}"""
# Regular items: the lowest open rank first, so items fill up to their overlap (and reach consensus) quickly;
# the row lock is taken with SKIP LOCKED so concurrent claims pass each other. Gold items have no counter to
# protect (every annotator may see each once): no lock, and each claim starts at a random rank (wrapping
# round to the lowest) so annotators do not all meet the same gold pair first. Both walk the partial index in
# rank order and stop at the first item the annotator has not had: no sort, no scan of their history.
_CLAIM_REGULAR = _CLAIM_SQL.format(candidate=_CANDIDATE.format(branch="i.open AND NOT i.is_gold",
                                                               lock="FOR UPDATE SKIP LOCKED"))
_GOLD = "i.is_gold AND i.open"
_CLAIM_GOLD = _CLAIM_SQL.format(candidate="(" + _CANDIDATE.format(branch=_GOLD + " AND i.rank >= %(start)s", lock="")
                                + ") UNION ALL (" + _CANDIDATE.format(branch=_GOLD, lock="") + ") LIMIT 1")


_CLAIM_PARAMS = [("user", "bigint"), ("queue", "bigint"), ("gold", "boolean"), ("winner_left", "boolean"),
                 ("lease", "integer"), ("overlap", "integer")]
_PREPARED_CLAIM_REGULAR = _Prepared("spatiallab_claim_regular", _CLAIM_REGULAR, _CLAIM_PARAMS)
_PREPARED_CLAIM_GOLD = _Prepared("spatiallab_claim_gold", _CLAIM_GOLD, [*_CLAIM_PARAMS, ("start", "integer")])


def _claim_postgres(queue: VerificationQueue, user_id: int, *, gold: bool, winner_left: bool) -> Lease | None:
    params = {"user": user_id, "queue": queue.pk, "gold": gold, "winner_left": winner_left,
              "lease": queue.lease_minutes, "overlap": queue.overlap, "start": random.randrange(RANK_MAX)}
    with connection.cursor() as cursor:
        for _ in range(3):  # a concurrent claim by the same user made the lease: the next round returns it
            (_PREPARED_CLAIM_GOLD if gold else _PREPARED_CLAIM_REGULAR).execute(cursor, params)
            row = cursor.fetchone()
            if row is not None:
                return Lease(*row)
            cursor.execute(f"SELECT 1 FROM {_A} WHERE annotator_id = %s AND queue_id = %s AND status = 'leased'",
                           [user_id, queue.pk])
            if cursor.fetchone() is None:
                return None
    return None


def _claim_orm(queue: VerificationQueue, user_id: int, *, gold: bool, winner_left: bool) -> Lease | None:
    with transaction.atomic():
        mine = (Assignment.objects.filter(annotator_id=user_id, queue=queue, status=AssignmentStatus.LEASED)
                .values_list("pk", "item_id", "item__pair_id", "winner_left", "expires_at").first())
        if mine:
            return Lease(*mine, resumed=True)
        items = QueueItem.objects.filter(queue=queue).exclude(
            Exists(Assignment.objects.filter(item=OuterRef("pk"), annotator_id=user_id)))
        if gold:
            start = random.randrange(RANK_MAX)
            items = items.filter(open=True)
            item = (items.filter(is_gold=True, rank__gte=start).order_by("rank").first()
                    or items.filter(is_gold=True, rank__lt=start).order_by("rank").first())
        else:
            item = items.filter(open=True, is_gold=False).order_by("rank").first()
        if item is None:
            return None
        now = timezone.now()
        assignment = Assignment.objects.create(
            queue=queue, item=item, annotator_id=user_id, is_gold=gold, winner_left=winner_left, leased_at=now,
            expires_at=now + timedelta(minutes=queue.lease_minutes))
        if not gold:
            # The IMMEDIATE transaction holds SQLite's write lock: nobody changed the item since it was read.
            QueueItem.objects.filter(pk=item.pk).update(taken=item.taken + 1, open=item.taken + 1 < queue.overlap)
        return Lease(assignment.pk, item.pk, item.pair_id, winner_left, assignment.expires_at, resumed=False)


def item_claim(*, queue: VerificationQueue, user, rng: random.Random | None = None) -> Lease | None:
    """The annotator's current item in the queue: their live lease if they hold one (a reload gets the same
    item), else a newly leased one; None when nothing is left for them. Gold items come at the queue's gold
    share; when no gold item is left for this annotator they get a regular one (never the other way round:
    once the regular items are done, the queue is done for them)."""
    if queue.status != QueueStatus.ACTIVE:
        raise VerificationError("This queue is not open for annotation.", code="queue_inactive")
    rng = rng or random
    gold = queue.gold_share > 0 and rng.random() < queue.gold_share
    claim = _claim_postgres if _postgres() else _claim_orm
    lease = claim(queue, user.pk, gold=gold, winner_left=rng.random() < 0.5)
    if lease is None and gold:
        lease = claim(queue, user.pk, gold=False, winner_left=rng.random() < 0.5)
    if lease is None and leases_expire(queue_id=queue.pk):  # an abandoned lease may be all that is left
        lease = claim(queue, user.pk, gold=False, winner_left=rng.random() < 0.5)
    return lease


def answer_for(choice: str, winner_left: bool) -> str:
    """The positional choice in terms of the pair."""
    if choice == Choice.LEFT:
        return Answer.WINNER if winner_left else Answer.LOSER
    if choice == Choice.RIGHT:
        return Answer.LOSER if winner_left else Answer.WINNER
    return choice  # both, neither, unsure read the same either way


_SUBMIT_SQL = f"""
WITH answered AS (
    UPDATE {_A} SET status = 'answered', choice = %(choice)s,
        answer = CASE WHEN %(choice)s = 'left' THEN CASE WHEN winner_left THEN 'winner' ELSE 'loser' END
                      WHEN %(choice)s = 'right' THEN CASE WHEN winner_left THEN 'loser' ELSE 'winner' END
                      ELSE %(choice)s END,
        seconds = %(seconds)s, client_key = %(key)s, answered_at = now()
    WHERE id = %(assignment)s AND annotator_id = %(user)s AND status = 'leased'
      AND NOT EXISTS (SELECT 1 FROM {_A} k WHERE k.annotator_id = %(user)s AND k.client_key = %(key)s)
    RETURNING id, item_id, queue_id, answer, is_gold
), counted AS (
    UPDATE {_I} i SET done = i.done + 1 FROM answered WHERE i.id = answered.item_id
    RETURNING i.id, i.done
)
SELECT answered.id, answered.item_id, answered.answer, answered.is_gold, counted.done, q.overlap, q.quorum
FROM answered JOIN counted ON counted.id = answered.item_id JOIN {_Q} q ON q.id = answered.queue_id
"""


_PREPARED_SUBMIT = _Prepared("spatiallab_submit", _SUBMIT_SQL, [
    ("choice", "text"), ("seconds", "double precision"), ("key", "text"), ("assignment", "bigint"),
    ("user", "bigint")])


def _replay(user_id: int, client_key: str | None, assignment_id: int) -> Submitted:
    """A submission that changed nothing: a retry of a stored verdict, or an error saying why not."""
    if client_key:
        stored = (Assignment.objects.filter(annotator_id=user_id, client_key=client_key)
                  .values_list("pk", "item_id", "answer", "status").first())
        if stored:
            if stored[0] != assignment_id:
                raise VerificationError("This client key was used for another item.", code="key_reused",
                                        status=400)
            return Submitted(stored[0], stored[1], stored[2], replayed=True, decided=None)
    status = Assignment.objects.filter(pk=assignment_id, annotator_id=user_id).values_list("status", flat=True).first()
    if status is None:
        raise VerificationError("Your lease on this item expired and the item went back to the queue.",
                                code="lease_expired", status=410)
    raise VerificationError(f"This item is already {status}.", code=f"already_{status}")


def verdict_submit(*, user, assignment_id: int, choice: str, seconds: float | None = None,
                   client_key: str | None = None) -> Submitted:
    """Stores the annotator's verdict on their leased item. Idempotent: a retry with the same client key
    returns the stored verdict. When the verdict completes the item, the quorum decides it."""
    if choice not in Choice.values:
        raise ValidationError({"choice": f"Unknown choice {choice!r}; one of {', '.join(Choice.values)}."})
    if seconds is not None and not 0 <= seconds < 86400:
        raise ValidationError({"seconds": "Time spent must be between 0 and 86400 seconds."})
    if client_key is not None and not 1 <= len(client_key) <= 64:
        raise ValidationError({"client_key": "A client key has 1 to 64 characters."})
    try:
        if _postgres():
            with _statement(), connection.cursor() as cursor:
                _PREPARED_SUBMIT.execute(cursor, {"choice": choice, "seconds": seconds, "key": client_key,
                                                  "assignment": assignment_id, "user": user.pk})
                row = cursor.fetchone()
        else:
            row = _submit_orm(user.pk, assignment_id, choice, seconds, client_key)
    except IntegrityError:  # the client key is already on another verdict of this annotator
        row = None
    if row is None:
        return _replay(user.pk, client_key, assignment_id)
    assignment_id, item_id, answer, is_gold, done, overlap, quorum = row
    decided = None
    if not is_gold and done >= overlap:  # this verdict completed the item
        decided = item_decide(item_id=item_id, quorum=quorum)
    return Submitted(assignment_id, item_id, answer, replayed=False, decided=decided)


def _submit_orm(user_id, assignment_id, choice, seconds, client_key):
    with transaction.atomic():
        row = (Assignment.objects.filter(pk=assignment_id, annotator_id=user_id, status=AssignmentStatus.LEASED)
               .values_list("item_id", "winner_left", "is_gold", "queue__overlap", "queue__quorum").first())
        if row is None:
            return None
        item_id, winner_left, is_gold, overlap, quorum = row
        answer = answer_for(choice, winner_left)
        Assignment.objects.filter(pk=assignment_id).update(
            status=AssignmentStatus.ANSWERED, choice=choice, answer=answer, seconds=seconds, client_key=client_key,
            answered_at=timezone.now())
        QueueItem.objects.filter(pk=item_id).update(done=F("done") + 1)
        done = QueueItem.objects.filter(pk=item_id).values_list("done", flat=True).get()
        return assignment_id, item_id, answer, is_gold, done, overlap, quorum


def decide(answers: Sequence[str], quorum: int) -> str:
    """The quorum rule: verified when at least `quorum` answers say only the perfect prompt's image follows,
    rejected when at least `quorum` say otherwise (loser, both or neither), disputed otherwise ("can't tell"
    counts for neither side)."""
    winners = sum(answer == Answer.WINNER for answer in answers)
    others = sum(answer in (Answer.LOSER, Answer.BOTH, Answer.NEITHER) for answer in answers)
    if winners >= quorum and winners > others:
        return ItemStatus.VERIFIED
    if others >= quorum and others > winners:
        return ItemStatus.REJECTED
    return ItemStatus.DISPUTED


def item_decide(*, item_id: int, quorum: int) -> str | None:
    """Applies the quorum to a complete item (called by the verdict that completed it, after that verdict's
    statement committed, so every answer is visible); returns the new status, None if it was decided already."""
    answers = list(Assignment.objects.filter(item_id=item_id, status=AssignmentStatus.ANSWERED)
                   .values_list("answer", flat=True))
    status = decide(answers, quorum)
    changed = QueueItem.objects.filter(pk=item_id, status=ItemStatus.PENDING).update(status=status,
                                                                                      decided_at=timezone.now())
    return status if changed else None


_SKIP_SQL = f"""
WITH skipped AS (
    UPDATE {_A} SET status = 'skipped', skip_reason = %(reason)s, answered_at = now()
    WHERE id = %(assignment)s AND annotator_id = %(user)s AND status = 'leased'
    RETURNING id, item_id, is_gold
)
UPDATE {_I} i SET taken = i.taken - (NOT skipped.is_gold)::int, flags = i.flags + %(flag)s,
    status = CASE WHEN %(flag)s = 1 AND i.status = 'pending' THEN 'flagged' ELSE i.status END,
    open = NOT (%(flag)s = 1 OR i.status = 'flagged')
FROM skipped WHERE i.id = skipped.item_id
RETURNING skipped.id
"""


_PREPARED_SKIP = _Prepared("spatiallab_skip", _SKIP_SQL, [
    ("reason", "text"), ("assignment", "bigint"), ("user", "bigint"), ("flag", "integer")])


def item_skip(*, user, assignment_id: int, reason: str = "", broken: bool = False) -> None:
    """Gives the leased item back (another annotator gets it; this one never sees it again). `broken` flags
    the images as broken: the item leaves the queue until a researcher restores it."""
    reason = (reason or "").strip()
    if broken:
        reason = BROKEN_IMAGE + (f": {reason}" if reason else "")
    reason = reason[:200]
    if _postgres():
        with connection.cursor() as cursor:
            _PREPARED_SKIP.execute(cursor, {"reason": reason, "assignment": assignment_id, "user": user.pk,
                                            "flag": int(broken)})
            done = cursor.fetchone() is not None
    else:
        with transaction.atomic():
            row = (Assignment.objects.filter(pk=assignment_id, annotator_id=user.pk, status=AssignmentStatus.LEASED)
                   .values_list("item_id", "is_gold").first())
            done = row is not None
            if done:
                Assignment.objects.filter(pk=assignment_id).update(
                    status=AssignmentStatus.SKIPPED, skip_reason=reason, answered_at=timezone.now())
                item = QueueItem.objects.get(pk=row[0])
                item.taken -= 0 if row[1] else 1
                item.flags += int(broken)
                if broken and item.status == ItemStatus.PENDING:
                    item.status = ItemStatus.FLAGGED
                item.open = item.status != ItemStatus.FLAGGED
                item.save(update_fields=["taken", "flags", "status", "open"])
    if not done:
        _replay(user.pk, None, assignment_id)


def undo_seconds() -> int:
    return settings.VERIFICATION_UNDO_SECONDS


def verdict_undo(*, user, queue: VerificationQueue) -> int:
    """Takes back the annotator's last answer in the queue if it is younger than the undo window: the item is
    leased to them again (so the page shows it), the item they were given next goes back to the queue, and an
    item this answer had completed is open to consensus again. Returns the assignment id."""
    since = timezone.now() - timedelta(seconds=undo_seconds())
    with transaction.atomic():
        last = (Assignment.objects.select_for_update()
                .filter(annotator=user, queue=queue, status__in=[AssignmentStatus.ANSWERED, AssignmentStatus.SKIPPED])
                .order_by("-answered_at", "-pk").first())
        if last is None or last.status != AssignmentStatus.ANSWERED or last.answered_at < since:
            raise VerificationError(f"Nothing to undo: only your last answer, within {undo_seconds()} seconds.",
                                    code="nothing_to_undo")
        item = QueueItem.objects.select_for_update().get(pk=last.item_id)
        if hasattr(item, "adjudication"):
            raise VerificationError("This item has been adjudicated already.", code="adjudicated")
        # The item given out after this answer goes back first: one live lease per annotator and queue.
        current = (Assignment.objects.select_for_update()
                   .filter(annotator=user, queue=queue, status=AssignmentStatus.LEASED).first())
        if current is not None:
            _release(current)
        now = timezone.now()
        Assignment.objects.filter(pk=last.pk).update(
            status=AssignmentStatus.LEASED, choice="", answer="", seconds=None, client_key=None, answered_at=None,
            leased_at=now, expires_at=now + timedelta(minutes=queue.lease_minutes))
        item.done -= 1
        if item.status in (ItemStatus.VERIFIED, ItemStatus.REJECTED, ItemStatus.DISPUTED):
            item.status, item.decided_at = ItemStatus.PENDING, None
        item.save(update_fields=["done", "status", "decided_at"])
    return last.pk


def _release(assignment: Assignment) -> None:
    """Deletes a live lease and gives its slot back (inside the caller's transaction)."""
    assignment.delete()
    if not assignment.is_gold:
        QueueItem.objects.filter(pk=assignment.item_id).update(
            taken=F("taken") - 1, open=Case(When(status=ItemStatus.FLAGGED, then=Value(False)), default=Value(True)))


_EXPIRE_SQL = f"""
WITH expired AS (
    DELETE FROM {_A} WHERE id IN (
        SELECT id FROM {_A} WHERE status = 'leased' AND expires_at < now() {{queue}}
        ORDER BY expires_at LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
    RETURNING item_id, is_gold
), freed AS (
    SELECT item_id, count(*) AS n FROM expired WHERE NOT is_gold GROUP BY item_id
), updated AS (
    UPDATE {_I} i SET taken = i.taken - freed.n, open = i.status <> 'flagged'
    FROM freed WHERE i.id = freed.item_id
)
SELECT count(*) FROM expired
"""


def leases_expire(*, queue_id: int | None = None, batch: int = 5000) -> int:
    """Deletes leases past their expiry and returns their slots to the queue; run by the beat schedule (and by
    a claim that finds nothing, so an abandoned lease never blocks the last items). Returns how many."""
    total = 0
    while True:
        if _postgres():
            sql = _EXPIRE_SQL.format(queue="AND queue_id = %(queue)s" if queue_id else "")
            with connection.cursor() as cursor:
                cursor.execute(sql, {"batch": batch, "queue": queue_id})
                count = cursor.fetchone()[0]
        else:
            with transaction.atomic():
                stale = Assignment.objects.filter(status=AssignmentStatus.LEASED, expires_at__lt=timezone.now())
                if queue_id:
                    stale = stale.filter(queue_id=queue_id)
                stale = list(stale.order_by("expires_at")[:batch])
                for assignment in stale:
                    _release(assignment)
                count = len(stale)
        total += count
        if count < batch:
            return total


# --- Adjudication and flags -----------------------------------------------------------------------------------


def item_adjudicate(*, item: QueueItem, status: str, decided_by, note: str = "") -> Adjudication:
    """A researcher's decision on a disputed (or, to overrule consensus, a decided) item."""
    if status not in (ItemStatus.VERIFIED, ItemStatus.REJECTED):
        raise ValidationError({"status": "Adjudication decides verified or rejected."})
    with transaction.atomic():
        item = QueueItem.objects.select_for_update().get(pk=item.pk)
        if item.is_gold:
            raise ValidationError({"item": "Gold items have a known answer and are not adjudicated."})
        if item.status in (ItemStatus.PENDING, ItemStatus.FLAGGED):
            raise ValidationError({"item": "Only items with all their verdicts can be adjudicated."})
        adjudication, _ = Adjudication.objects.update_or_create(
            item=item, defaults={"status": status, "note": note, "decided_by": decided_by,
                                 "decided_at": timezone.now()})
        QueueItem.objects.filter(pk=item.pk).update(status=status, decided_at=timezone.now())
    return adjudication


def item_restore(*, item: QueueItem) -> QueueItem:
    """Puts an item flagged as broken back into its queue (the images were fine after all)."""
    with transaction.atomic():
        item = QueueItem.objects.select_for_update().select_related("queue").get(pk=item.pk)
        if item.status != ItemStatus.FLAGGED:
            raise ValidationError({"item": "Only flagged items can be restored."})
        item.status = ItemStatus.PENDING
        item.open = item.is_gold or item.taken < item.queue.overlap
        item.save(update_fields=["status", "open"])
        if not item.is_gold and item.done >= item.queue.overlap:
            item_decide(item_id=item.pk, quorum=item.queue.quorum)
    return item
