"""Reads for verification: which queues a user reaches, what an annotator sees of an item, queue progress and
the agreement statistics (agreement.py's numpy kernels over one query's rows)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils.safestring import SafeString

from spatiallab.accounts.roles import DASHBOARD_ROLES, Role, has_any_role
from spatiallab.prompts.models import PerturbationEdit
from spatiallab.prompts.selectors import Mark, _span, graph_marks, highlight
from spatiallab.verification.agreement import (
    Ratings,
    cohen_kappa_matrix,
    fleiss_kappa,
    krippendorff_alpha,
    percent_agreement,
)
from spatiallab.verification.models import (
    Answer,
    Assignment,
    AssignmentStatus,
    ItemStatus,
    QueueItem,
    QueueStatus,
    VerificationQueue,
)

# --- Who reaches what -------------------------------------------------------------------------------------------


def queues_visible_to(user) -> QuerySet[VerificationQueue]:
    """Researchers and admins see every queue; annotators the active queues open to them."""
    if has_any_role(user, DASHBOARD_ROLES):
        return VerificationQueue.objects.all()
    if has_any_role(user, (Role.ANNOTATOR,)):
        return queues_open_to(user)
    return VerificationQueue.objects.none()


def queues_open_to(user) -> QuerySet[VerificationQueue]:
    """The queues a user may annotate: active, and either open to every annotator or listing this user."""
    if not user.is_authenticated:
        return VerificationQueue.objects.none()
    members = VerificationQueue.annotators.through.objects.filter(verificationqueue_id=OuterRef("pk"))
    return (VerificationQueue.objects.filter(status=QueueStatus.ACTIVE)
            .filter(~Exists(members) | Exists(members.filter(user_id=user.pk))))


def queues_for_annotator(user) -> list[VerificationQueue]:
    """The annotator's queue list: each with their own answers and the items still open (never anyone else's
    answers), highest priority first."""
    mine = Assignment.objects.filter(queue=OuterRef("pk"), annotator=user)
    # Scalar subqueries, not two Counts over joins: joining a queue's assignments with its items would count
    # their product.
    queues = queues_open_to(user).annotate(
        my_answered=_count(mine.filter(status=AssignmentStatus.ANSWERED)),
        open_items=_count(QueueItem.objects.filter(queue=OuterRef("pk"), open=True, is_gold=False)),
        has_lease=Exists(mine.filter(status=AssignmentStatus.LEASED)),
    ).order_by("-priority", "-created_at", "-pk")
    return list(queues)


def _count(queryset) -> Coalesce:
    return Coalesce(Subquery(queryset.order_by().values("queue").annotate(n=Count("pk")).values("n")[:1]), 0)


def annotator_counts(queue: VerificationQueue, user) -> dict[str, int]:
    """The annotator's own progress in a queue (answers and skips), for the page header."""
    counts = dict(Assignment.objects.filter(queue=queue, annotator=user)
                  .values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    return {"answered": counts.get(AssignmentStatus.ANSWERED, 0), "skipped": counts.get(AssignmentStatus.SKIPPED, 0)}


# --- What the annotator sees ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemView:
    """An item as the annotator sees it: the perfect prompt (relation phrases highlighted, the edited ones
    marked) and the pair's two images in the lease's left/right order. Nothing here says which image came
    from which prompt: the image URLs go through the assignment (`left` / `right`)."""

    assignment_id: int
    item_id: int
    prompt_html: SafeString
    prompt_text: str
    edited: list[str]
    width: int
    height: int
    expires_at: object


def item_view(lease) -> ItemView:
    item = (QueueItem.objects.select_related("pair__prompt").only(
        "pair__prompt__text", "pair__prompt__graph", "pair__perturbed_id", "pair__width", "pair__height")
        .get(pk=lease.item_id))
    pair = item.pair
    edits = list(PerturbationEdit.objects.filter(perturbed_id=pair.perturbed_id).order_by("position")
                 .values_list("span_before", "relation_before"))
    edited_spans = {_span(span) for span, _ in edits} - {None}
    marks = [Mark(m.start, m.end, m.css + (" edited" if (m.start, m.end) in edited_spans else ""), m.title)
             for m in graph_marks(pair.prompt.graph) if "rel" in m.css.split()]
    covered = {(m.start, m.end) for m in marks}
    marks += [Mark(*span, "rel edited", "the relation to check") for span in edited_spans if span not in covered]
    text = pair.prompt.text
    edited = [text[start:end] for start, end in sorted(edited_spans)]
    return ItemView(lease.assignment_id, lease.item_id, highlight(text, marks), text, edited, pair.width,
                    pair.height, lease.expires_at)


def assignment_image_name(*, user, assignment_id: int, side: str) -> str | None:
    """The storage name of the image shown on `side` ("left"/"right", "-thumb" for thumbnails) of the user's
    own assignment, or None. The left/right order was drawn when the item was leased."""
    thumb = side.endswith("-thumb")
    side = side.removesuffix("-thumb")
    if side not in ("left", "right"):
        return None
    row = (Assignment.objects.filter(pk=assignment_id, annotator=user)
           .values_list("winner_left", "item__pair__winner_image", "item__pair__loser_image",
                        "item__pair__winner_thumb", "item__pair__loser_thumb").first())
    if row is None:
        return None
    winner_left, winner, loser, winner_thumb, loser_thumb = row
    if thumb:
        winner, loser = winner_thumb, loser_thumb
    return winner if (side == "left") == winner_left else loser


# --- Progress ------------------------------------------------------------------------------------------------------


def queues_with_progress(user) -> QuerySet[VerificationQueue]:
    """The researcher's queue table: items by status and answers, one query."""
    regular = Q(items__is_gold=False)
    return queues_visible_to(user).annotate(
        item_count=Count("items", filter=regular, distinct=True),
        gold_count=Count("items", filter=Q(items__is_gold=True), distinct=True),
        verified_count=Count("items", filter=regular & Q(items__status=ItemStatus.VERIFIED), distinct=True),
        rejected_count=Count("items", filter=regular & Q(items__status=ItemStatus.REJECTED), distinct=True),
        disputed_count=Count("items", filter=regular & Q(items__status=ItemStatus.DISPUTED), distinct=True),
        flagged_count=Count("items", filter=regular & Q(items__status=ItemStatus.FLAGGED), distinct=True),
        answer_count=_count(Assignment.objects.filter(queue=OuterRef("pk"), status=AssignmentStatus.ANSWERED)),
    ).select_related("created_by").order_by("-priority", "-created_at", "-pk")


def queue_progress(queue: VerificationQueue) -> dict:
    """Items by status, answers given and still needed, for one queue."""
    by_status = dict(queue.items.filter(is_gold=False).values_list("status").annotate(n=Count("pk"))
                     .values_list("status", "n"))
    items = sum(by_status.values())
    verdicts = dict(queue.assignments.values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    answered_regular = queue.assignments.filter(status=AssignmentStatus.ANSWERED, is_gold=False).count()
    needed = items * queue.overlap
    return {
        "items": items,
        "gold": queue.items.filter(is_gold=True).count(),
        "by_status": {status: by_status.get(status, 0) for status in ItemStatus.values},
        "decided": sum(by_status.get(s, 0) for s in (ItemStatus.VERIFIED, ItemStatus.REJECTED, ItemStatus.DISPUTED)),
        "answered": verdicts.get(AssignmentStatus.ANSWERED, 0),
        "skipped": verdicts.get(AssignmentStatus.SKIPPED, 0),
        "leased": verdicts.get(AssignmentStatus.LEASED, 0),
        "answers_needed": needed,
        "percent": round(100.0 * answered_regular / needed, 1) if needed else 0.0,
    }


def disputed_items(queue: VerificationQueue) -> QuerySet[QueueItem]:
    """The adjudication queue: disputed items with their pair and every verdict (annotators' names)."""
    return (queue.items.filter(status=ItemStatus.DISPUTED, is_gold=False).select_related("pair__prompt",
                                                                                           "pair__perturbed")
            .prefetch_related("assignments__annotator").order_by("decided_at", "pk"))


# --- Agreement statistics ------------------------------------------------------------------------------------

ANSWERS = list(Answer.values)


@dataclass
class AnnotatorStats:
    user_id: int
    username: str
    answered: int = 0
    skipped: int = 0
    skip_rate: float = math.nan
    median_seconds: float = math.nan
    gold_answered: int = 0
    gold_accuracy: float = math.nan
    consensus_items: int = 0
    consensus_agreement: float = math.nan
    single_picks: int = 0
    position_bias: float = math.nan  # share of left among answers that pick exactly one image


@dataclass
class QueueStats:
    verdicts: int
    items_rated: int
    percent_agreement: float
    fleiss_kappa: float
    krippendorff_alpha: float
    annotators: list[AnnotatorStats]
    kappa: list[list[float]]  # Cohen's kappa, annotators x annotators, in `annotators` order (NaN: no shared items)
    shared: list[list[int]]
    throughput: list[tuple[str, int]]  # (hour, answers)
    answers: dict[str, int] = field(default_factory=dict)


_CHOICE_CODE = "CASE a.choice WHEN 'left' THEN 0 WHEN 'right' THEN 1 ELSE 2 END"
_ANSWER_CODE = "CASE a.answer " + " ".join(f"WHEN '{a}' THEN {i}" for i, a in enumerate(ANSWERS)) + " END"
_STATUS_CODE = "CASE i.status WHEN 'verified' THEN 1 WHEN 'rejected' THEN 0 ELSE -1 END"
# Eight integer columns, none NULL (seconds in milliseconds, -1 when not recorded).
_VERDICT_COLUMNS = [
    "a.annotator_id", "a.item_id", _ANSWER_CODE, _CHOICE_CODE, "COALESCE(round(a.seconds * 1000), -1)",
    "CASE WHEN a.is_gold THEN 1 ELSE 0 END",
    "CASE WHEN i.gold_verified IS NULL THEN -1 WHEN i.gold_verified THEN 1 ELSE 0 END", _STATUS_CODE,
]


_HOUR = {"postgresql": "floor(extract(epoch FROM a.answered_at) / 3600)",
         "sqlite": "CAST(strftime('%%s', a.answered_at) AS integer) / 3600"}


def _columns() -> list[str]:
    """The verdict columns and, last, the hour of the answer (hours since 1970, for answers per hour)."""
    return [*_VERDICT_COLUMNS, _HOUR.get(connection.vendor, _HOUR["postgresql"])]


def _verdict_sql(cast: str) -> str:
    columns = ", ".join(f"CAST({column} AS {cast})" for column in _columns())
    return (f"SELECT {columns} FROM {Assignment._meta.db_table} a JOIN {QueueItem._meta.db_table} i "
            "ON i.id = a.item_id WHERE a.queue_id = %s AND i.queue_id = %s AND a.status = 'answered'")


# PostgreSQL packs each verdict into two big-endian int64 (bit fields below) and each item into one, aggregated
# into a bytea per query that numpy reads as it is: a million verdicts arrive in about a second, where building
# a million Python tuples (or iterating a COPY row by row) takes seconds. Packing the fields with shifts costs
# the server far less than sending one value per column. Ids beyond the fields' widths fall back to the plain
# query (annotator ids below 2**24, item ids below 2**31).
_PACKED_VERDICTS = f"""
SELECT string_agg(int8send(
           (a.item_id::bigint << 32) | (a.annotator_id::bigint << 8) | (({_ANSWER_CODE})::bigint << 3)
           | (({_CHOICE_CODE})::bigint << 1) | a.is_gold::int::bigint)
       || int8send((floor(extract(epoch FROM a.answered_at) / 3600)::bigint << 32)
                   | (COALESCE(round(a.seconds * 1000), -1)::bigint + 1)), ''::bytea),
       max(a.item_id), max(a.annotator_id)
FROM {Assignment._meta.db_table} a WHERE a.queue_id = %s AND a.status = 'answered'
"""
_PACKED_ITEMS = f"""
SELECT string_agg(int8send((i.id::bigint << 8)
       | ((CASE WHEN i.gold_verified IS NULL THEN 0 WHEN i.gold_verified THEN 2 ELSE 1 END)::bigint << 2)
       | ({_STATUS_CODE} + 1)::bigint), ''::bytea)
FROM {QueueItem._meta.db_table} i WHERE i.queue_id = %s
"""


def _verdicts_packed(queue_id: int) -> np.ndarray | None:
    with connection.cursor() as cursor:
        cursor.execute(_PACKED_VERDICTS, [queue_id])
        verdicts, max_item, max_annotator = cursor.fetchone()
        if not verdicts:
            return np.empty((0, len(_columns())), dtype=np.int64)
        if max_item >= 2**31 or max_annotator >= 2**24:
            return None
        cursor.execute(_PACKED_ITEMS, [queue_id])
        items = np.frombuffer(bytes(cursor.fetchone()[0]), dtype=">i8").astype(np.int64)
    words = np.frombuffer(bytes(verdicts), dtype=">i8").astype(np.int64).reshape(-1, 2)
    first, second = words[:, 0], words[:, 1]
    item = first >> 32
    item_ids, item_fields = items >> 8, items & 0xFF
    order = np.argsort(item_ids)
    at = order[np.searchsorted(item_ids, item, sorter=order)]
    columns = [
        (first >> 8) & 0xFFFFFF, item, (first >> 3) & 0x1F, (first >> 1) & 0x3, first & 0x1,
    ]
    return np.stack([
        columns[0], columns[1], columns[2], columns[3], (second & 0xFFFFFFFF) - 1, columns[4],
        ((item_fields[at] >> 2) & 0x3) - 1, (item_fields[at] & 0x3) - 1, second >> 32,
    ], axis=1)


def _verdict_arrays(queue_id: int) -> np.ndarray:
    """Every answered verdict of the queue as an (n, 9) int64 matrix (columns as _columns())."""
    if connection.vendor == "postgresql":
        packed = _verdicts_packed(queue_id)
        if packed is not None:
            return packed
    with connection.cursor() as cursor:
        cursor.execute(_verdict_sql("bigint" if connection.vendor == "postgresql" else "integer"),
                       [queue_id, queue_id])
        rows = cursor.fetchall()
    return np.array(rows, dtype=np.int64).reshape(-1, len(_columns()))


def _nan_to_none(value: float):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def queue_stats(queue: VerificationQueue) -> QueueStats:
    """Agreement over the queue's regular items (gold items are measured separately, against their answer):
    percent agreement, Fleiss' kappa, Krippendorff's alpha, Cohen's kappa of each pair of annotators, and per
    annotator gold accuracy, agreement with the final decision, median seconds, skip rate and position bias."""
    data = _verdict_arrays(queue.pk)
    annotator, item, answer, choice, millis, gold, gold_ok, decision, hour = (data[:, c] for c in range(9))
    seconds = np.where(millis >= 0, millis / 1000.0, -1.0)
    regular = gold == 0
    ratings = Ratings.from_arrays(item[regular], annotator[regular], answer[regular], ANSWERS)

    skips = dict(queue.assignments.filter(status=AssignmentStatus.SKIPPED).values_list("annotator")
                 .annotate(n=Count("pk")).values_list("annotator", "n"))
    ids = sorted(set(np.unique(annotator).astype(int).tolist()) | set(skips))
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
    index = {user_id: position for position, user_id in enumerate(ids)}
    n = len(ids)
    seen, inverse = np.unique(annotator, return_inverse=True)
    rater = np.array([index[int(a)] for a in seen], dtype=np.int64)[inverse.reshape(-1)]

    def per_annotator(mask, values=None) -> np.ndarray:
        return np.bincount(rater[mask], weights=None if values is None else values[mask], minlength=n)

    says_winner = answer == ANSWERS.index(Answer.WINNER)
    answered = per_annotator(np.ones(len(rater), dtype=bool))
    gold_seen = per_annotator(gold == 1)
    gold_right = per_annotator((gold == 1) & (gold_ok >= 0) & (says_winner == (gold_ok == 1)))
    decided = regular & (decision >= 0)
    consensus_seen = per_annotator(decided)
    consensus_same = per_annotator(decided & (says_winner == (decision == 1)))
    single = choice < 2
    single_picks = per_annotator(single)
    left_picks = per_annotator(single & (choice == 0))
    timed = seconds >= 0
    order = np.lexsort((seconds[timed], rater[timed]))
    timed_rater, timed_seconds = rater[timed][order], seconds[timed][order]

    def share(numerator, denominator, i) -> float:
        return float(numerator[i] / denominator[i]) if denominator[i] else math.nan

    people = []
    for i, user_id in enumerate(ids):
        start, end = np.searchsorted(timed_rater, [i, i + 1])  # sorted by annotator, then seconds
        own = timed_seconds[start:end]
        skipped = skips.get(user_id, 0)
        people.append(AnnotatorStats(
            user_id=user_id, username=names.get(user_id, str(user_id)), answered=int(answered[i]), skipped=skipped,
            skip_rate=skipped / (answered[i] + skipped) if answered[i] + skipped else math.nan,
            median_seconds=float(np.median(own)) if len(own) else math.nan,
            gold_answered=int(gold_seen[i]), gold_accuracy=share(gold_right, gold_seen, i),
            consensus_items=int(consensus_seen[i]), consensus_agreement=share(consensus_same, consensus_seen, i),
            single_picks=int(single_picks[i]), position_bias=share(left_picks, single_picks, i)))

    kappa = np.full((n, n), np.nan)
    shared = np.zeros((n, n), dtype=np.int64)
    if ratings.n_raters:
        pair_kappa, pair_shared = cohen_kappa_matrix(ratings)
        positions = np.array([index[int(r)] for r in ratings.rater_labels], dtype=np.int64)
        kappa[np.ix_(positions, positions)] = pair_kappa
        shared[np.ix_(positions, positions)] = pair_shared
    hours, per_hour = np.unique(hour, return_counts=True)
    throughput = [(datetime.fromtimestamp(int(h) * 3600, tz=UTC).isoformat(), int(n))
                  for h, n in zip(hours, per_hour, strict=True)]
    codes, counts = np.unique(answer[regular].astype(int), return_counts=True)
    return QueueStats(
        verdicts=int(regular.sum()), items_rated=ratings.n_items,
        percent_agreement=percent_agreement(ratings), fleiss_kappa=fleiss_kappa(ratings),
        krippendorff_alpha=krippendorff_alpha(ratings), annotators=people,
        kappa=kappa.tolist(), shared=shared.tolist(), throughput=throughput,
        answers={ANSWERS[c]: int(k) for c, k in zip(codes, counts, strict=True)})


def stats_as_dict(stats: QueueStats) -> dict:
    """JSON-ready (NaN becomes null): what the REST endpoint returns and the dashboard's plots read."""
    return {
        "verdicts": stats.verdicts,
        "items_rated": stats.items_rated,
        "percent_agreement": _nan_to_none(stats.percent_agreement),
        "fleiss_kappa": _nan_to_none(stats.fleiss_kappa),
        "krippendorff_alpha": _nan_to_none(stats.krippendorff_alpha),
        "answers": stats.answers,
        "annotators": [{key: _nan_to_none(value) for key, value in vars(person).items()}
                       for person in stats.annotators],
        "kappa": {"annotators": [person.username for person in stats.annotators],
                  "matrix": [[_nan_to_none(v) for v in row] for row in stats.kappa],
                  "shared": stats.shared},
        "throughput": [{"hour": hour, "answers": count} for hour, count in stats.throughput],
    }
