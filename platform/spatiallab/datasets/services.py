"""Making dataset versions: criteria checked up front, entries built by the `build_dataset` job chunk by chunk
in pair-id order (resumable), then one pass that hashes, counts and diffs the entries and freezes the version.

Which pairs enter (per pair, over the regular items of the selected queues; gold items never enter and a pair
that is gold in one of those queues is left out too):
- at least one of its items is verified, and none is rejected or disputed (a pair the queues disagree on is
  left out: its label is not settled);
- with `include_adjudicated` off, items verified by adjudication count as not verified;
- `min_agreement`: the share of all answers to the pair (over its counted items) that say only the perfect
  prompt's image follows must reach it. Adjudicated pairs are exempt when they count (they were disputed, so
  their agreement is low by definition: the adjudication is the label);
- generator, rule and number-of-edits filters as in the pair gallery.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, OuterRef, Prefetch, Q
from django.utils import timezone

from spatiallab.datasets.canonical import DEFAULT_RATIOS, canonical_line, check_ratios, diff_entries, split_for
from spatiallab.datasets.models import DatasetEntry, DatasetExport, DatasetVersion, ExportStatus, VersionStatus
from spatiallab.generation.models import Generator, Pair
from spatiallab.prompts.models import PerturbationEdit, PerturbationRule
from spatiallab.verification.models import (
    Adjudication,
    Answer,
    AssignmentStatus,
    ItemStatus,
    QueueItem,
    VerificationQueue,
)

CRITERIA_FIELDS = ("queues", "generators", "rules", "n_edits", "min_agreement", "include_adjudicated")
N_EDITS_CHOICES = ("", "1", "2-3")
HASH_THREADS = 8
DIFF_SAMPLE = 100  # ids of each kind kept in a version's stored diff


class ContentMismatch(Exception):
    """An export found entries or images that do not match what was frozen."""


# --- Criteria ------------------------------------------------------------------------------------------------


def _id_list(value, field: str, errors: dict) -> list[int]:
    if value in (None, ""):
        return []
    if not isinstance(value, list | tuple):
        errors[field] = ["Expected a list of ids."]
        return []
    ids = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | str) or not str(item).isdigit():
            errors[field] = [f"{item!r} is not an id."]
            return []
        ids.append(int(item))
    return sorted(set(ids))


def criteria_clean(criteria: dict | None) -> dict:
    """The criteria with defaults filled in and every id checked; a ValidationError names each bad field."""
    criteria = dict(criteria or {})
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(criteria) - set(CRITERIA_FIELDS))
    if unknown:
        errors["criteria"] = [f"Unknown criteria {', '.join(unknown)}; known: {', '.join(CRITERIA_FIELDS)}."]
    queues = _id_list(criteria.get("queues"), "queues", errors)
    generators = _id_list(criteria.get("generators"), "generators", errors)
    rules = _id_list(criteria.get("rules"), "rules", errors)
    if not queues and "queues" not in errors:
        errors["queues"] = ["Pick at least one verification queue."]
    for field, model, ids in (("queues", VerificationQueue, queues), ("generators", Generator, generators),
                              ("rules", PerturbationRule, rules)):
        if ids and field not in errors:
            missing = sorted(set(ids) - set(model.objects.filter(pk__in=ids).values_list("pk", flat=True)))
            if missing:
                errors[field] = [f"Unknown ids: {', '.join(map(str, missing))}."]
    n_edits = str(criteria.get("n_edits") or "")
    if n_edits not in N_EDITS_CHOICES:
        errors["n_edits"] = ["Choose 1, 2-3 or nothing (all)."]
    min_agreement = criteria.get("min_agreement", 0.0)
    try:
        min_agreement = float(min_agreement if min_agreement not in (None, "") else 0.0)
        if not 0.0 <= min_agreement <= 1.0:
            raise ValueError
    except (TypeError, ValueError):
        errors["min_agreement"] = ["A share between 0 and 1."]
    include_adjudicated = criteria.get("include_adjudicated", True)
    if not isinstance(include_adjudicated, bool):
        errors["include_adjudicated"] = ["true or false."]
    if errors:
        raise ValidationError(errors)
    return {"queues": queues, "generators": generators, "rules": rules, "n_edits": n_edits,
            "min_agreement": min_agreement, "include_adjudicated": include_adjudicated}


def _candidate_items(criteria: dict):
    """Regular items of the selected queues whose pair passes the pair filters and is gold in none of them."""
    items = QueueItem.objects.filter(queue_id__in=criteria["queues"], is_gold=False)
    if criteria["generators"]:
        items = items.filter(pair__generator_id__in=criteria["generators"])
    if criteria["n_edits"] == "1":
        items = items.filter(pair__n_edits=1)
    elif criteria["n_edits"] == "2-3":
        items = items.filter(pair__n_edits__gte=2)
    if criteria["rules"]:
        items = items.filter(Exists(PerturbationEdit.objects.filter(perturbed_id=OuterRef("pair__perturbed_id"),
                                                                     rule_id__in=criteria["rules"])))
    gold = QueueItem.objects.filter(queue_id__in=criteria["queues"], is_gold=True, pair_id=OuterRef("pair_id"))
    return items.filter(~Exists(gold))


def _verified_items(criteria: dict):
    items = _candidate_items(criteria).filter(status=ItemStatus.VERIFIED)
    if not criteria["include_adjudicated"]:
        items = items.filter(~Exists(Adjudication.objects.filter(item_id=OuterRef("pk"))))
    return items


def candidate_count(criteria: dict) -> int:
    """Pairs with at least one verified item (an upper bound of the entries: conflicts and agreement filter
    later). Shown while a researcher edits criteria and used as the build job's progress total."""
    return _verified_items(criteria).values("pair_id").distinct().count()


# --- Creating and building -----------------------------------------------------------------------------------


def version_create(*, name: str, criteria: dict, description: str = "", parent: DatasetVersion | None = None,
                   ratios: dict | None = None, split_salt: str | None = None, created_by=None) -> DatasetVersion:
    """Stores the version (status building) and starts its build job; nothing else is written until the job
    runs. A child version takes its parent's ratios and salt unless given, so its prompts keep their splits."""
    from spatiallab.jobs.services import job_create

    errors: dict[str, list[str]] = {}
    name = (name or "").strip()
    if not name:
        errors["name"] = ["A dataset version needs a name."]
    elif DatasetVersion.objects.filter(name=name).exists():
        errors["name"] = [f"A dataset version named {name!r} exists already."]
    if parent is not None and parent.status != VersionStatus.FROZEN:
        errors["parent"] = ["The parent must be a frozen version."]
    try:
        ratios = check_ratios(ratios if ratios is not None else (parent.ratios if parent else DEFAULT_RATIOS))
    except ValueError as exc:
        errors["ratios"] = [str(exc).capitalize() + "."]
    if split_salt is None:
        split_salt = parent.split_salt if parent else "spatiallab"
    if len(split_salt) > 100:
        errors["split_salt"] = ["At most 100 characters."]
    try:
        criteria = criteria_clean(criteria)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    if candidate_count(criteria) == 0:
        raise ValidationError({"criteria": ["No verified pairs match these criteria."]})
    try:
        with transaction.atomic():
            version = DatasetVersion.objects.create(name=name, description=description, parent=parent,
                                                    criteria=criteria, ratios=ratios, split_salt=split_salt,
                                                    created_by=created_by)
            job = job_create(kind="build_dataset", params={"version": version.pk}, created_by=created_by)
            DatasetVersion.objects.filter(pk=version.pk).update(build_job=job)
            version.build_job = job
    except IntegrityError:  # another request took the name between the check and the insert
        raise ValidationError({"name": [f"A dataset version named {name!r} exists already."]}) from None
    return version


def jobs_ended_fail_their_work(sender, job_ids: list[int], status: str, **kwargs) -> None:
    """Receiver of jobs.services.job_ended: a version or export whose job ended without success (cancelled
    while queued, out of attempts, ...) is marked failed instead of waiting forever; one that its handler
    already marked keeps its own error."""
    DatasetVersion.objects.filter(build_job_id__in=job_ids, status=VersionStatus.BUILDING).update(
        status=VersionStatus.FAILED, error=f"The build job was {status} before the version was built.")
    DatasetExport.objects.filter(job_id__in=job_ids, status=ExportStatus.BUILDING).update(
        status=ExportStatus.FAILED, error=f"The export job was {status} before the file was written.",
        finished_at=timezone.now())


def _sha256_of(name: str) -> str:
    digest = hashlib.sha256()
    with default_storage.open(name, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_hashes(names: Iterable[str]) -> dict[str, str]:
    names = list(dict.fromkeys(names))
    with ThreadPoolExecutor(max_workers=HASH_THREADS) as pool:
        return dict(zip(names, pool.map(_sha256_of, names), strict=True))


@dataclass
class _PairVotes:
    winners: int = 0
    answers: int = 0
    verified: int = 0
    adjudicated: int = 0
    blocked: bool = False
    queues: tuple[int, ...] = ()


def _votes(criteria: dict, pair_ids: list[int]) -> dict[int, _PairVotes]:
    answered = Q(assignments__status=AssignmentStatus.ANSWERED)
    rows = (_candidate_items(criteria).filter(pair_id__in=pair_ids)
            .annotate(adjudicated=Exists(Adjudication.objects.filter(item_id=OuterRef("pk"))),
                      n_winner=Count("assignments", filter=answered & Q(assignments__answer=Answer.WINNER)),
                      n_answers=Count("assignments", filter=answered))
            .values_list("pair_id", "queue_id", "status", "adjudicated", "n_winner", "n_answers"))
    votes: dict[int, _PairVotes] = {}
    for pair_id, queue_id, status, adjudicated, n_winner, n_answers in rows:
        vote = votes.setdefault(pair_id, _PairVotes())
        if status in (ItemStatus.REJECTED, ItemStatus.DISPUTED):
            vote.blocked = True
        if status != ItemStatus.VERIFIED:
            continue  # pending or flagged items neither count nor block
        if adjudicated and not criteria["include_adjudicated"]:
            continue
        vote.verified += 1
        vote.adjudicated += bool(adjudicated)
        vote.winners += n_winner
        vote.answers += n_answers
        vote.queues = tuple(sorted({*vote.queues, queue_id}))
    return votes


def _edit(edit: PerturbationEdit) -> dict:
    return {"rule_kind": edit.rule_kind, "relation_kind": edit.relation_kind,
            "before": edit.relation_before, "after": edit.relation_after}


def entry_for(pair: Pair, vote: _PairVotes, split: str, hashes: dict[str, str]) -> dict:
    """The canonical entry of a pair: everything an export carries about it."""
    agreement = round(vote.winners / vote.answers, 6) if vote.answers else None
    return {
        "pair_id": pair.pk, "split": split,
        "prompt": pair.prompt.text, "perturbed_prompt": pair.perturbed.text,
        "prompt_id": pair.prompt_id, "perturbed_id": pair.perturbed_id,
        "n_edits": pair.n_edits, "edits": [_edit(edit) for edit in pair.perturbed.edits.all()],
        "category": pair.prompt.category, "relation_count": pair.prompt.relation_count,
        "chosen": {"path": pair.winner_image, "sha256": hashes[pair.winner_image]},
        "rejected": {"path": pair.loser_image, "sha256": hashes[pair.loser_image]},
        "width": pair.width, "height": pair.height,
        "generator": pair.generator.name, "generator_id": pair.generator_id, "backend": pair.generator.backend,
        "seed": pair.seed,
        "verification": {"decision": "adjudicated" if vote.adjudicated else "consensus", "agreement": agreement,
                         "answers": vote.answers, "queues": list(vote.queues)},
    }


def build_total(*, version: DatasetVersion) -> int:
    return candidate_count(version.criteria)


def build_chunk(*, version: DatasetVersion, after: int, size: int) -> tuple[int, int, int]:
    """Adds the entries of the next `size` candidate pairs after pair id `after`; returns (pairs read,
    entries added, last pair id read). Image files are hashed here, so an entry pins its images' bytes."""
    criteria = version.criteria
    pair_ids = list(_verified_items(criteria).filter(pair_id__gt=after).order_by("pair_id")
                    .values_list("pair_id", flat=True).distinct()[:size])
    if not pair_ids:
        return 0, 0, after
    votes = _votes(criteria, pair_ids)
    keep = []
    for pair_id in pair_ids:
        vote = votes.get(pair_id)
        if vote is None or vote.blocked or not vote.verified:
            continue
        agreement = vote.winners / vote.answers if vote.answers else 0.0
        if not vote.adjudicated and agreement < criteria["min_agreement"] - 1e-12:
            continue
        keep.append(pair_id)
    edits = Prefetch("perturbed__edits", queryset=PerturbationEdit.objects.order_by("position"))
    pairs = list(Pair.objects.filter(pk__in=keep).order_by("pk").select_related("prompt", "perturbed", "generator")
                 .prefetch_related(edits))
    hashes = _file_hashes(name for pair in pairs for name in (pair.winner_image, pair.loser_image))
    rows = []
    for pair in pairs:
        split = split_for(pair.prompt.normalized_text, version.ratios, version.split_salt)
        entry = entry_for(pair, votes[pair.pk], split, hashes)
        rows.append(DatasetEntry(version=version, pair=pair, split=split, line=canonical_line(entry).decode()))
    DatasetEntry.objects.bulk_create(rows, batch_size=1000)
    return len(pair_ids), len(rows), pair_ids[-1]


def build_discard_after(*, version: DatasetVersion, after: int) -> int:
    """A resumed build first removes entries past its checkpoint (written by a chunk that did not finish)."""
    deleted, _ = DatasetEntry.objects.filter(version=version, pair_id__gt=after).delete()
    return deleted


# --- Reading entries in order (constant memory) ------------------------------------------------------------


def entry_lines(version_id: int, *, columns: str = "pair_id, split, line", chunk: int = 5000) -> Iterator[tuple]:
    """A version's entries in pair-id order, read in keyset-paginated chunks (each one query on the unique
    (version, pair) index): memory stays flat however many entries the version has, no transaction or cursor
    stays open while a slow client downloads, and two versions can be read side by side (the diff)."""
    table = DatasetEntry._meta.db_table
    sql = (f"SELECT pair_id, {columns} FROM {table} WHERE version_id = %s AND pair_id > %s "
           f"ORDER BY pair_id LIMIT {int(chunk)}")
    after = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(sql, [version_id, after])
            rows = cursor.fetchall()
        for row in rows:
            yield row[1:]
        if len(rows) < chunk:
            return
        after = rows[-1][0]


def _label(line: str) -> tuple:
    entry = json.loads(line)
    return entry["split"], json.dumps(entry.get("verification"), sort_keys=True)


def version_diff(old: DatasetVersion, new: DatasetVersion, *, sample: int | None = DIFF_SAMPLE) -> dict:
    """Added, removed and relabelled (another split or verification) pairs of `new` against `old`."""
    diff = diff_entries(((pair, _label(line)) for pair, line in entry_lines(old.pk, columns="pair_id, line")),
                        ((pair, _label(line)) for pair, line in entry_lines(new.pk, columns="pair_id, line")))
    cut = slice(None) if sample is None else slice(sample)
    return {
        "against": old.pk, "against_name": old.name,
        "added": len(diff.added), "removed": len(diff.removed), "relabelled": len(diff.relabelled),
        "added_ids": diff.added[cut], "removed_ids": diff.removed[cut],
        "relabelled_ids": [pair for pair, _, _ in diff.relabelled][cut],
    }


def _bucket(n_edits: int) -> str:
    return "1" if n_edits == 1 else "2-3"


def card_counts(lines: Iterable[str]) -> dict:
    """The version card's counts, from the canonical lines: by split, relation type (of the edited
    relations), number of edits (1 vs 2-3), generator, scene category, and an agreement histogram."""
    counts = {key: Counter() for key in ("split", "relation_kind", "n_edits", "generator", "category")}
    agreement = Counter()
    for line in lines:
        entry = json.loads(line)
        counts["split"][entry["split"]] += 1
        counts["n_edits"][_bucket(entry["n_edits"])] += 1
        counts["generator"][entry["generator"]] += 1
        counts["category"][entry["category"] or "(none)"] += 1
        for kind in {edit["relation_kind"] for edit in entry["edits"]}:
            counts["relation_kind"][kind] += 1
        value = entry["verification"]["agreement"]
        low = None if value is None else min(int(value * 10 + 1e-9), 9)
        agreement["n/a" if low is None else f"{low / 10:.1f}-{(low + 1) / 10:.1f}"] += 1
    card = {key: dict(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))) for key, counter in counts.items()}
    card["split"] = {split: counts["split"].get(split, 0) for split in ("train", "validation", "test")}
    card["agreement"] = dict(sorted(agreement.items()))
    return card


def _queue_agreement(queue_ids: list[int]) -> list[dict]:
    from spatiallab.verification.selectors import queue_stats, stats_as_dict

    rows = []
    for queue in VerificationQueue.objects.filter(pk__in=queue_ids).order_by("pk"):
        stats = stats_as_dict(queue_stats(queue))
        rows.append({"queue": queue.pk, "name": queue.name, "overlap": queue.overlap, "quorum": queue.quorum,
                     **{key: stats[key] for key in ("verdicts", "items_rated", "percent_agreement",
                                                    "fleiss_kappa", "krippendorff_alpha")}})
    return rows


class _Tee:
    """Feeds the lines of one pass to the hash and the counts."""

    def __init__(self, rows: Iterable[tuple]):
        self.rows = rows
        self.count = 0
        self.digest = hashlib.sha256()

    def lines(self) -> Iterator[str]:
        for (line,) in self.rows:
            self.count += 1
            encoded = line.encode()
            self.digest.update(encoded)
            self.digest.update(b"\n")
            yield line


def build_finish(*, version: DatasetVersion) -> DatasetVersion:
    """Hashes and counts the entries in one streaming pass, diffs against the parent, writes the card and the
    README, and freezes the version."""
    from spatiallab.datasets.readme import render_readme

    tee = _Tee(entry_lines(version.pk, columns="line"))
    card = card_counts(tee.lines())
    card["queues"] = _queue_agreement(version.criteria.get("queues", []))
    diff = version_diff(version.parent, version) if version.parent_id else {}
    version.content_hash = tee.digest.hexdigest()
    version.entry_count = tee.count
    version.card, version.diff = card, diff
    version.frozen_at = timezone.now()
    version.readme = render_readme(version)
    with transaction.atomic():
        DatasetVersion.objects.filter(pk=version.pk, status=VersionStatus.BUILDING).update(
            content_hash=version.content_hash, entry_count=version.entry_count, card=card, diff=diff,
            readme=version.readme, frozen_at=version.frozen_at, status=VersionStatus.FROZEN)
    version.status = VersionStatus.FROZEN
    return version


def build_fail(*, version_id: int, error: str) -> None:
    DatasetVersion.objects.filter(pk=version_id, status=VersionStatus.BUILDING).update(
        status=VersionStatus.FAILED, error=error[-5000:])


def version_verify(version: DatasetVersion) -> None:
    """Recomputes the content hash from the stored entries; ContentMismatch if it differs from the frozen one."""
    found = content_hash_of(version.pk)
    if found != version.content_hash:
        raise ContentMismatch(f"dataset version {version.name!r}: its entries hash to {found}, not to the frozen "
                              f"{version.content_hash}; the stored entries were changed")


def content_hash_of(version_id: int) -> str:
    tee = _Tee(entry_lines(version_id, columns="line"))
    for _ in tee.lines():
        pass
    return tee.digest.hexdigest()



# --- Export jobs ---------------------------------------------------------------------------------------------


def export_request(*, version: DatasetVersion, fmt: str, split: str = "", created_by=None) -> tuple[DatasetExport,
                                                                                                     bool]:
    """The export of this version, format and split: the existing one (building or ready), or a new one with
    its job. Returns (export, created)."""
    from spatiallab.datasets.exports import NotFrozen
    from spatiallab.jobs.services import job_create

    if version.status != VersionStatus.FROZEN:
        raise NotFrozen(f"dataset version {version.name!r} is {version.status}; only frozen versions export")
    live = DatasetExport.objects.filter(version=version, format=fmt, split=split).exclude(status=ExportStatus.FAILED)
    existing = live.first()
    if existing:
        return existing, False
    try:
        with transaction.atomic():
            export = DatasetExport.objects.create(version=version, format=fmt, split=split, created_by=created_by)
            export.job = job_create(kind="export_dataset", params={"export": export.pk}, created_by=created_by)
            export.save(update_fields=["job"])
    except IntegrityError:  # another request made it at the same moment
        return live.get(), False
    return export, True
