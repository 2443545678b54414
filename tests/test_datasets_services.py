"""Dataset versions: which verified pairs enter, splits by prompt, the content hash, card, README and diff, the
build job's resume, and immutability at every layer (model, database triggers, pair deletion)."""

import hashlib
import json

import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.db.models import ProtectedError

from spatiallab.datasets.canonical import split_for
from spatiallab.datasets.exports import export_chunks
from spatiallab.datasets.models import DatasetEntry, DatasetVersion, FrozenError, VersionStatus
from spatiallab.datasets.services import (
    ContentMismatch,
    build_chunk,
    build_finish,
    candidate_count,
    criteria_clean,
    version_create,
    version_verify,
)
from spatiallab.jobs.services import job_claim
from spatiallab.verification.models import Answer, ItemStatus, QueueItem
from spatiallab.verification.services import item_adjudicate
from tests.dataset_data import build_version, run_job_inline, verified_pairs
from workers.handlers.datasets import run_build_dataset
from workers.runner import JobContext

W, L, N, U = Answer.WINNER, Answer.LOSER, Answer.NEITHER, Answer.UNSURE


def _mixed(pairs):
    """pairs[8]: 2 of 3 say winner; [9]: rejected; [10]: disputed; every other pair: all three say winner."""
    return {pairs[8].pk: [W, W, N], pairs[9].pk: [N, N, L], pairs[10].pk: [W, N, U]}


@pytest.fixture
def setup(db, researcher):
    pairs, queue = verified_pairs(12, answers_for=_mixed)
    item = QueueItem.objects.get(queue=queue, pair=pairs[10])
    assert item.status == ItemStatus.DISPUTED
    assert QueueItem.objects.get(queue=queue, pair=pairs[9]).status == ItemStatus.REJECTED
    return pairs, queue


def _entries(version) -> list[dict]:
    return [json.loads(line) for line in DatasetEntry.objects.filter(version=version).order_by("pair_id")
            .values_list("line", flat=True)]


def test_a_version_holds_the_verified_pairs_with_splits_by_prompt_and_a_hash_over_its_lines(setup, researcher):
    pairs, queue = setup
    version = build_version("v1", criteria={"queues": [queue.pk]}, created_by=researcher)
    assert version.status == VersionStatus.FROZEN and version.frozen_at is not None
    entries = _entries(version)
    # Verified by quorum: 0-8 and 11; rejected (9) and disputed (10, not adjudicated) stay out.
    assert [e["pair_id"] for e in entries] == [p.pk for p in pairs[:9] + pairs[11:]]
    assert version.entry_count == 10
    by_pair = {p.pk: p for p in pairs}
    for entry in entries:
        pair = by_pair[entry["pair_id"]]
        assert entry["split"] == split_for(pair.prompt.normalized_text, version.ratios, version.split_salt)
        assert entry["prompt"] == pair.prompt.text and entry["perturbed_prompt"] == pair.perturbed.text
        assert entry["chosen"]["path"] == pair.winner_image and entry["rejected"]["path"] == pair.loser_image
        with pair_file(pair.winner_image) as data:
            assert entry["chosen"]["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["n_edits"] == pair.n_edits == len(entry["edits"])
        assert entry["verification"]["decision"] == "consensus"
    assert by_pair[pairs[8].pk] and entries[8]["verification"]["agreement"] == pytest.approx(2 / 3, abs=1e-6)
    assert entries[0]["verification"] == {"agreement": 1.0, "answers": 3, "decision": "consensus",
                                          "queues": [queue.pk]}
    # Both seeds of one prompt are in the same split.
    splits_by_prompt = {}
    for entry in entries:
        splits_by_prompt.setdefault(entry["prompt_id"], set()).add(entry["split"])
    assert all(len(splits) == 1 for splits in splits_by_prompt.values())
    # The content hash is SHA-256 over the canonical lines, and the JSONL export is exactly those bytes.
    lines = DatasetEntry.objects.filter(version=version).order_by("pair_id").values_list("line", flat=True)
    expected = hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()
    assert version.content_hash == expected
    assert hashlib.sha256(b"".join(export_chunks(version, "jsonl"))).hexdigest() == expected
    # Card and README.
    assert version.card["split"] == {s: sum(e["split"] == s for e in entries) for s in ("train", "validation", "test")}
    assert version.card["n_edits"] == {"1": 10}
    assert sum(version.card["generator"].values()) == 10
    kinds = {}
    for entry in entries:
        for kind in {edit["relation_kind"] for edit in entry["edits"]}:
            kinds[kind] = kinds.get(kind, 0) + 1
    assert version.card["relation_kind"] == dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    assert version.card["queues"][0]["queue"] == queue.pk and version.card["queues"][0]["verdicts"] == 36
    assert version.card["agreement"] == {"0.6-0.7": 1, "0.9-1.0": 9}
    assert version.content_hash in version.readme and "# v1" in version.readme
    assert "| train |" in version.readme


def pair_file(name):
    from contextlib import contextmanager

    from django.core.files.storage import default_storage

    @contextmanager
    def opened():
        with default_storage.open(name, "rb") as handle:
            yield handle.read()

    return opened()


def test_criteria_agreement_adjudication_and_filters(setup, researcher):
    pairs, queue = setup
    item_adjudicate(item=QueueItem.objects.get(queue=queue, pair=pairs[10]), status=ItemStatus.VERIFIED,
                    decided_by=researcher)
    with_adjudicated = build_version("with", criteria={"queues": [queue.pk]})
    entries = _entries(with_adjudicated)
    assert [e["pair_id"] for e in entries] == [p.pk for p in pairs[:9] + pairs[10:]]
    assert entries[-2]["verification"]["decision"] == "adjudicated"
    strict = build_version("strict", criteria={"queues": [queue.pk], "min_agreement": 0.9,
                                               "include_adjudicated": False})
    assert [e["pair_id"] for e in _entries(strict)] == [p.pk for p in pairs[:8] + pairs[11:]]
    # min_agreement does not drop adjudicated pairs (the adjudication is their label).
    assert pairs[10].pk in [e["pair_id"] for e in _entries(build_version("s2", criteria={
        "queues": [queue.pk], "min_agreement": 0.9}))]
    # Another generator: nothing matches, refused before any job starts.
    with pytest.raises(ValidationError) as error:
        version_create(name="none", criteria={"queues": [queue.pk], "generators": [pairs[0].generator_id + 999]})
    assert "generators" in error.value.message_dict
    assert candidate_count(criteria_clean({"queues": [queue.pk], "n_edits": "2-3"})) == 0


def test_gold_pairs_never_enter(db, researcher):
    pairs, queue = verified_pairs(6)
    from spatiallab.verification.services import queue_create
    from tests.dataset_data import answer_queue
    from tests.factories import UserFactory

    gold_queue = queue_create(name="with-gold", overlap=1, quorum=1, selection={"generator": pairs[0].generator_id},
                              gold=[(pairs[0].pk, True)], gold_share=0.5).queue
    answer_queue(gold_queue, {}, [UserFactory(role="annotator")])
    version = build_version("gold", criteria={"queues": [queue.pk, gold_queue.pk]})
    ids = [e["pair_id"] for e in _entries(version)]
    assert pairs[0].pk not in ids and ids == [p.pk for p in pairs[1:]]


def test_criteria_errors_name_the_field(db):
    for criteria, field in [({}, "queues"), ({"queues": "x"}, "queues"), ({"queues": [999999]}, "queues"),
                            ({"queues": [1], "n_edits": "4"}, "n_edits"),
                            ({"queues": [1], "min_agreement": 2}, "min_agreement"),
                            ({"queues": [1], "include_adjudicated": "yes"}, "include_adjudicated"),
                            ({"queues": [1], "colour": "red"}, "criteria")]:
        with pytest.raises(ValidationError) as error:
            criteria_clean(criteria)
        assert field in error.value.message_dict, (criteria, error.value.message_dict)
    with pytest.raises(ValidationError) as error:
        version_create(name="", criteria={}, ratios={"train": 0.5, "test": 0.2})
    assert {"name", "queues", "ratios"} <= set(error.value.message_dict)
    assert DatasetVersion.objects.count() == 0


def test_a_child_version_records_its_parent_and_the_diff(setup, researcher):
    pairs, queue = setup
    parent = build_version("parent", criteria={"queues": [queue.pk], "min_agreement": 0.9})
    item_adjudicate(item=QueueItem.objects.get(queue=queue, pair=pairs[10]), status=ItemStatus.VERIFIED,
                    decided_by=researcher)
    child = build_version("child", criteria={"queues": [queue.pk]}, parent=parent,
                          ratios={"train": 0.5, "validation": 0.25, "test": 0.25})
    assert child.parent_id == parent.pk and child.split_salt == parent.split_salt
    old, new = {e["pair_id"]: e for e in _entries(parent)}, {e["pair_id"]: e for e in _entries(child)}
    relabelled = sorted(p for p in old.keys() & new.keys() if old[p]["split"] != new[p]["split"]
                        or old[p]["verification"] != new[p]["verification"])
    assert child.diff["added"] == 2 and child.diff["added_ids"] == [pairs[8].pk, pairs[10].pk]
    assert child.diff["removed"] == 0 and child.diff["relabelled_ids"] == relabelled
    assert child.diff["relabelled"] == len(relabelled)
    assert "Changes against the parent" in child.readme and "parent" in child.readme
    with pytest.raises(ValidationError) as error:  # a child of an unfrozen version is refused
        building = DatasetVersion.objects.create(name="b", criteria={"queues": [queue.pk]}, ratios=parent.ratios)
        version_create(name="c2", criteria={"queues": [queue.pk]}, parent=building)
    assert "parent" in error.value.message_dict


def test_a_resumed_build_drops_the_half_done_chunk_and_hashes_the_same(setup):
    pairs, queue = setup
    whole = build_version("whole", criteria={"queues": [queue.pk]})
    version = version_create(name="resumed", criteria={"queues": [queue.pk]})
    read, added, last = build_chunk(version=version, after=0, size=4)
    assert (read, added) == (4, 4)
    build_chunk(version=version, after=last, size=3)  # written, but the worker died before the checkpoint
    job = version.build_job
    job.checkpoint = {"after": last, "read": 4, "added": 4}
    job.save(update_fields=["checkpoint"])
    run_build_dataset(JobContext(job_claim(job_id=job.pk, worker_name="t")))
    version.refresh_from_db()
    assert version.entry_count == whole.entry_count and version.content_hash == whole.content_hash


def test_a_frozen_version_cannot_change_through_any_layer(setup):
    pairs, queue = setup
    version = build_version("frozen", criteria={"queues": [queue.pk]})
    entry = DatasetEntry.objects.filter(version=version).first()
    version.description = "changed"
    with pytest.raises(FrozenError):
        version.save()
    with pytest.raises(FrozenError):
        version.delete()
    entry.split = "test"
    with pytest.raises(FrozenError):
        entry.save()
    with pytest.raises(FrozenError):
        entry.delete()
    # Bulk ORM and raw SQL go around save(): the database refuses them.
    attempts = [
        lambda: DatasetEntry.objects.filter(version=version).update(split="test"),
        lambda: DatasetEntry.objects.filter(version=version).delete(),
        lambda: DatasetEntry.objects.create(version=version, pair=pairs[9], split="train", line="{}"),
        lambda: DatasetVersion.objects.filter(pk=version.pk).update(name="renamed"),
        lambda: DatasetVersion.objects.filter(pk=version.pk).update(readme="edited"),
        lambda: DatasetVersion.objects.filter(pk=version.pk).update(status="building"),
        lambda: DatasetVersion.objects.filter(pk=version.pk).delete(),
        lambda: raw(f"UPDATE datasets_datasetentry SET line = '{{}}' WHERE version_id = {version.pk}"),
        lambda: raw(f"DELETE FROM datasets_datasetversion WHERE id = {version.pk}"),
    ]
    for attempt in attempts:
        with pytest.raises((DatabaseError, ProtectedError, FrozenError)), transaction.atomic():
            attempt()
    with pytest.raises(ProtectedError):  # the pairs (and so their prompts) of a version stay
        pairs[0].delete()
    version.refresh_from_db()
    version_verify(version)  # unchanged
    assert version.name == "frozen" and DatasetEntry.objects.filter(version=version).count() == 10
    # References that other rows' deletion clears may still change (a deleted user or job).
    DatasetVersion.objects.filter(pk=version.pk).update(created_by=None, build_job=None)


def raw(sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)


def drop_guards() -> None:
    """Removes the immutability triggers inside the test's transaction (rolled back with it), to play an
    attacker with direct database access."""
    if connection.vendor == "postgresql":
        raw("DROP TRIGGER datasets_entry_frozen ON datasets_datasetentry")
        raw("DROP TRIGGER datasets_version_frozen ON datasets_datasetversion")
    else:
        for name in ("insert", "update", "delete"):
            raw(f"DROP TRIGGER datasets_entry_frozen_{name}")


def test_tampered_entries_or_images_fail_the_hash_check(setup):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    pairs, queue = setup
    version = build_version("tampered", criteria={"queues": [queue.pk]})
    image = _entries(version)[0]["chosen"]["path"]
    default_storage.delete(image)
    default_storage.save(image, ContentFile(b"not the image"))
    with pytest.raises(ContentMismatch, match="changed since the version was frozen"):
        b"".join(export_chunks(version, "tar"))
    with pytest.raises(ContentMismatch):
        b"".join(export_chunks(version, "parquet"))
    drop_guards()
    raw(f"UPDATE datasets_datasetentry SET split = 'test', line = replace(line, '\"split\":\"train\"', "
        f"'\"split\":\"test\"') WHERE version_id = {version.pk}")
    raw(f"UPDATE datasets_datasetentry SET line = line || ' ' WHERE version_id = {version.pk} "
        f"AND pair_id = {pairs[0].pk}")
    with pytest.raises(ContentMismatch):
        version_verify(version)
    with pytest.raises(ContentMismatch):
        b"".join(export_chunks(version, "jsonl"))


def test_a_job_that_fails_marks_the_version_failed(setup, settings):
    pairs, queue = setup
    version = version_create(name="broken", criteria={"queues": [queue.pk]})
    from django.core.files.storage import default_storage

    default_storage.delete(pairs[0].winner_image)  # an image file is gone: hashing it fails
    with pytest.raises(FileNotFoundError):
        run_job_inline(version.build_job)
    version.refresh_from_db()
    assert version.status == VersionStatus.FAILED and "FileNotFoundError" in version.error
    assert build_finish  # the finish step is only reached by complete builds


def test_a_build_or_export_job_cancelled_while_queued_fails_its_version_or_export(setup):
    from spatiallab.datasets.models import DatasetExport, ExportStatus
    from spatiallab.datasets.services import export_request
    from spatiallab.jobs.services import job_cancel

    pairs, queue = setup
    version = version_create(name="cancelled", criteria={"queues": [queue.pk]})
    job_cancel(job=version.build_job)
    version.refresh_from_db()
    assert version.status == VersionStatus.FAILED and "cancelled" in version.error
    frozen = build_version("for-export", criteria={"queues": [queue.pk]})
    export, _ = export_request(version=frozen, fmt="jsonl")
    job_cancel(job=export.job)
    assert DatasetExport.objects.get(pk=export.pk).status == ExportStatus.FAILED
    again, created = export_request(version=frozen, fmt="jsonl")  # a failed export does not block a new one
    assert created and again.pk != export.pk


def test_a_name_taken_at_the_same_moment_is_a_field_error(setup, monkeypatch):
    from spatiallab.datasets import services

    pairs, queue = setup
    build_version("taken", criteria={"queues": [queue.pk]})
    real_filter = DatasetVersion.objects.filter
    monkeypatch.setattr(services.DatasetVersion.objects, "filter",
                        lambda *a, **k: real_filter(pk=-1) if k.get("name") == "taken" else real_filter(*a, **k))
    with pytest.raises(ValidationError) as error:  # the check passed (a racing request), the insert did not
        version_create(name="taken", criteria={"queues": [queue.pk]})
    assert "name" in error.value.message_dict
