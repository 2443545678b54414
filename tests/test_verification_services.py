"""Verification services: building queues, the claim/submit/skip/undo guarantees, lease expiry, gold mixing,
consensus and adjudication, and the statistics against reference implementations. The concurrency test at the
end runs 32 threads on whatever database the suite uses (PostgreSQL in CI's first run: the SKIP LOCKED path)."""

import math
import random
import statistics
import threading
import time
from datetime import timedelta

import krippendorff
import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from spatiallab.generation.models import Pair
from spatiallab.verification.models import (
    Answer,
    Assignment,
    AssignmentStatus,
    ItemStatus,
    QueueItem,
    QueueStatus,
    VerificationQueue,
)
from spatiallab.verification.selectors import ANSWERS, queue_progress, queue_stats
from spatiallab.verification.services import (
    VerificationError,
    answer_for,
    decide,
    item_adjudicate,
    item_claim,
    item_restore,
    item_skip,
    leases_expire,
    queue_create,
    queue_update,
    verdict_submit,
    verdict_undo,
)
from tests.factories import UserFactory
from tests.verification_data import make_pairs, make_queue


def annotators(n):
    return [UserFactory(role="annotator") for _ in range(n)]


def answer_all(queue, user, choice="left", rng=None):
    """Claims and answers until the queue has nothing left for `user`; returns the assignment ids."""
    done = []
    while (lease := item_claim(queue=queue, user=user, rng=rng)) is not None:
        pick = choice if isinstance(choice, str) else choice(lease)
        verdict_submit(user=user, assignment_id=lease.assignment_id, choice=pick, seconds=1.0)
        done.append(lease.assignment_id)
    return done


# --- Pure rules ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("answers", "quorum", "status"), [
    (["winner", "winner", "winner"], 2, "verified"),
    (["winner", "winner", "both"], 2, "verified"),
    (["winner", "loser", "neither"], 2, "rejected"),
    (["winner", "both", "unsure"], 2, "disputed"),
    (["unsure", "unsure", "unsure"], 2, "disputed"),
    (["winner", "winner", "loser"], 3, "disputed"),
    (["winner"], 1, "verified"),
    (["neither"], 1, "rejected"),
    (["winner", "loser"], 1, "disputed"),  # a tie is never a decision
])
def test_quorum_rule(answers, quorum, status):
    assert decide(answers, quorum) == status


@pytest.mark.parametrize(("choice", "winner_left", "answer"), [
    ("left", True, "winner"), ("left", False, "loser"), ("right", True, "loser"), ("right", False, "winner"),
    ("both", True, "both"), ("neither", False, "neither"), ("unsure", True, "unsure"),
])
def test_positional_choice_becomes_an_answer_about_the_pair(choice, winner_left, answer):
    assert answer_for(choice, winner_left) == answer


# --- Building queues ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_queue_over_a_selection_with_gold_drawn_from_ground_truth():
    pairs = make_pairs(12)
    Pair.objects.filter(pk__in=[p.pk for p in pairs[:4]]).update(ground_truth_ok=False)
    build = queue_create(name="q", selection={"generator": pairs[0].generator_id}, gold_count=5, gold_share=0.2)
    assert (build.items, build.gold) == (7, 5)
    items = QueueItem.objects.filter(queue=build.queue)
    gold = items.filter(is_gold=True)
    assert gold.count() == 5 and items.filter(is_gold=False).count() == 7
    regular_pairs = set(items.filter(is_gold=False).values_list("pair_id", flat=True))
    assert not set(gold.values_list("pair_id", flat=True)) & regular_pairs
    truth = dict(Pair.objects.values_list("pk", "ground_truth_ok"))
    assert all(item.gold_verified == truth[item.pair_id] for item in gold)
    ranks = list(items.values_list("rank", flat=True))
    assert len(set(ranks)) == len(ranks)  # random serving order (distinct with overwhelming probability)
    assert build.queue.quorum == 2  # the majority of 3 by default


@pytest.mark.django_db
def test_explicit_gold_and_selection_filters():
    pairs = make_pairs(6)
    build = queue_create(name="q", selection={"generator": pairs[0].generator_id, "n_edits": "1"},
                         gold=[(pairs[0].pk, True), (pairs[1].pk, False)], gold_share=0.1, limit=3)
    assert (build.items, build.gold) == (3, 2)
    assert dict(QueueItem.objects.filter(is_gold=True).values_list("pair_id", "gold_verified")) == {
        pairs[0].pk: True, pairs[1].pk: False}


@pytest.mark.django_db
@pytest.mark.parametrize(("options", "field"), [
    ({"name": ""}, "name"),
    ({"overlap": 0}, "overlap"),
    ({"overlap": 3, "quorum": 4}, "quorum"),
    ({"lease_minutes": 0}, "lease_minutes"),
    ({"gold_share": 0.7}, "gold_share"),
    ({"gold_share": 0.2}, "gold_share"),  # a gold share without gold pairs
    ({"gold_count": 99}, "gold_count"),
    ({"selection": {"colour": "red"}}, "selection"),
    ({"selection": {"generator": 10**9}}, "selection"),  # matches nothing
    ({"gold": [(10**9, True)]}, "gold"),
])
def test_bad_queue_input_names_the_field_and_stores_nothing(options, field):
    pairs = make_pairs(3)
    make_queue(pairs, name="taken")
    before = (VerificationQueue.objects.count(), QueueItem.objects.count())
    arguments = {"name": "new", "selection": {"generator": pairs[0].generator_id}, **options}
    with pytest.raises(ValidationError) as error:
        queue_create(**arguments)
    assert field in error.value.message_dict
    assert (VerificationQueue.objects.count(), QueueItem.objects.count()) == before


@pytest.mark.django_db
def test_overlap_and_quorum_are_fixed_once_the_queue_has_started():
    pairs = make_pairs(2)
    queue = make_queue(pairs)
    queue_update(queue=queue, overlap=2, quorum=2, priority=5)
    (user,) = annotators(1)
    item_claim(queue=queue, user=user)
    with pytest.raises(ValidationError) as error:
        queue_update(queue=queue, overlap=3)
    assert "overlap" in error.value.message_dict
    queue_update(queue=queue, status=QueueStatus.PAUSED, lease_minutes=5)
    queue.refresh_from_db()
    assert (queue.overlap, queue.priority, queue.status, queue.lease_minutes) == (2, 5, "paused", 5)
    with pytest.raises(VerificationError):
        item_claim(queue=queue, user=user)


# --- Claim and answer ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_asking_again_returns_the_same_lease_and_an_item_is_never_served_twice():
    pairs = make_pairs(5)
    queue = make_queue(pairs, overlap=1)
    (user,) = annotators(1)
    seen = []
    while (lease := item_claim(queue=queue, user=user)) is not None:
        again = item_claim(queue=queue, user=user)
        assert (again.assignment_id, again.item_id, again.resumed) == (lease.assignment_id, lease.item_id, True)
        assert not lease.resumed
        verdict_submit(user=user, assignment_id=lease.assignment_id, choice="both")
        seen.append(lease.item_id)
    assert sorted(seen) == sorted(QueueItem.objects.values_list("pk", flat=True))


@pytest.mark.django_db
def test_items_get_exactly_their_overlap_and_then_consensus():
    pairs = make_pairs(4)
    queue = make_queue(pairs, overlap=2, quorum=2)
    first, second, third = annotators(3)
    assert len(answer_all(queue, first, "left")) == 4
    assert len(answer_all(queue, second, "left")) == 4
    assert answer_all(queue, third) == []  # every item has its two answers
    items = QueueItem.objects.filter(queue=queue)
    assert all((i.taken, i.done, i.open) == (2, 2, False) for i in items)
    # "left" is the winner exactly where the lease put the winner on the left: both agree only there.
    for item in items:
        answers = list(item.assignments.values_list("answer", flat=True))
        assert item.status == decide(answers, 2) and item.decided_at is not None
    assert queue_progress(queue)["percent"] == 100.0


@pytest.mark.django_db
def test_left_right_order_is_random_and_kept_with_the_verdict():
    pairs = make_pairs(40)
    queue = make_queue(pairs, overlap=1)
    (user,) = annotators(1)
    answer_all(queue, user, "left", rng=random.Random(3))
    rows = list(Assignment.objects.values_list("winner_left", "choice", "answer"))
    lefts = sum(row[0] for row in rows)
    assert 8 <= lefts <= 32  # both orders occur (binomial(40, 0.5))
    assert all(answer == ("winner" if winner_left else "loser") for winner_left, choice, answer in rows)


@pytest.mark.django_db
def test_a_retried_verdict_is_stored_once():
    pairs = make_pairs(2)
    queue = make_queue(pairs, overlap=1)
    (user,) = annotators(1)
    lease = item_claim(queue=queue, user=user)
    first = verdict_submit(user=user, assignment_id=lease.assignment_id, choice="right", seconds=2.5, client_key="k1")
    retry = verdict_submit(user=user, assignment_id=lease.assignment_id, choice="right", seconds=2.5, client_key="k1")
    assert (first.replayed, retry.replayed) == (False, True)
    assert retry.assignment_id == first.assignment_id
    assert Assignment.objects.filter(status="answered").count() == 1
    assert QueueItem.objects.get(pk=lease.item_id).done == 1
    with pytest.raises(VerificationError) as error:  # a different key on an answered item: a conflict
        verdict_submit(user=user, assignment_id=lease.assignment_id, choice="left", client_key="k2")
    assert error.value.code == "already_answered"
    other = item_claim(queue=queue, user=user)
    with pytest.raises(VerificationError) as error:  # the same key for another item: a client bug
        verdict_submit(user=user, assignment_id=other.assignment_id, choice="left", client_key="k1")
    assert (error.value.code, error.value.status) == ("key_reused", 400)
    with pytest.raises(ValidationError):
        verdict_submit(user=user, assignment_id=other.assignment_id, choice="upside-down")


@pytest.mark.django_db
def test_nobody_answers_someone_elses_lease():
    pairs = make_pairs(1)
    queue = make_queue(pairs, overlap=2)
    owner, intruder = annotators(2)
    lease = item_claim(queue=queue, user=owner)
    with pytest.raises(VerificationError):
        verdict_submit(user=intruder, assignment_id=lease.assignment_id, choice="left")
    with pytest.raises(VerificationError):
        item_skip(user=intruder, assignment_id=lease.assignment_id)
    assert Assignment.objects.get(pk=lease.assignment_id).status == "leased"


@pytest.mark.django_db
def test_an_expired_lease_returns_the_item():
    pairs = make_pairs(1)
    queue = make_queue(pairs, overlap=1)
    slow, fast = annotators(2)
    lease = item_claim(queue=queue, user=slow)
    assert item_claim(queue=queue, user=fast) is None  # the only slot is leased
    Assignment.objects.filter(pk=lease.assignment_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert leases_expire() == 1
    item = QueueItem.objects.get()
    assert (item.taken, item.open) == (0, True)
    with pytest.raises(VerificationError) as error:
        verdict_submit(user=slow, assignment_id=lease.assignment_id, choice="left")
    assert (error.value.code, error.value.status) == ("lease_expired", 410)
    assert item_claim(queue=queue, user=fast) is not None


@pytest.mark.django_db
def test_a_claim_that_finds_nothing_takes_back_abandoned_leases_itself():
    pairs = make_pairs(1)
    queue = make_queue(pairs, overlap=1)
    gone, here = annotators(2)
    item_claim(queue=queue, user=gone)
    Assignment.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    lease = item_claim(queue=queue, user=here)  # without waiting for the beat sweep
    assert lease is not None and Assignment.objects.count() == 1


@pytest.mark.django_db
def test_skip_gives_the_item_to_others_only_and_a_broken_flag_withdraws_it():
    pairs = make_pairs(2)
    queue = make_queue(pairs, overlap=1)
    skipper, other = annotators(2)
    lease = item_claim(queue=queue, user=skipper)
    item_skip(user=skipper, assignment_id=lease.assignment_id, reason="too small to see")
    row = Assignment.objects.get(pk=lease.assignment_id)
    assert (row.status, row.skip_reason) == ("skipped", "too small to see")
    assert (QueueItem.objects.get(pk=lease.item_id).taken, QueueItem.objects.get(pk=lease.item_id).open) == (0, True)
    following = item_claim(queue=queue, user=skipper)
    assert following.item_id != lease.item_id
    item_skip(user=skipper, assignment_id=following.assignment_id, broken=True)
    assert item_claim(queue=queue, user=skipper) is None
    flagged = QueueItem.objects.get(pk=following.item_id)
    assert (flagged.status, flagged.flags, flagged.open) == ("flagged", 1, False)
    assert item_claim(queue=queue, user=other).item_id == lease.item_id  # the skipped one, not the broken one
    item_restore(item=flagged)
    flagged.refresh_from_db()
    assert (flagged.status, flagged.open) == ("pending", True)


@pytest.mark.django_db
def test_undo_takes_back_the_last_answer_within_the_window():
    pairs = make_pairs(3)
    queue = make_queue(pairs, overlap=1, quorum=1)
    (user,) = annotators(1)
    first = item_claim(queue=queue, user=user)
    verdict_submit(user=user, assignment_id=first.assignment_id, choice="left", client_key="a")
    assert QueueItem.objects.get(pk=first.item_id).status != "pending"  # overlap 1: decided at once
    following = item_claim(queue=queue, user=user)
    assert verdict_undo(user=user, queue=queue) == first.assignment_id
    again = item_claim(queue=queue, user=user)
    assert (again.assignment_id, again.item_id) == (first.assignment_id, first.item_id)
    item = QueueItem.objects.get(pk=first.item_id)
    assert (item.done, item.taken, item.status, item.decided_at) == (0, 1, "pending", None)
    released = QueueItem.objects.get(pk=following.item_id)
    assert (released.taken, released.open) == (0, True)
    assert not Assignment.objects.filter(pk=following.assignment_id).exists()
    with pytest.raises(VerificationError):  # nothing answered since: nothing to undo
        verdict_undo(user=user, queue=queue)
    verdict_submit(user=user, assignment_id=first.assignment_id, choice="neither", client_key="a")  # key reusable
    assert QueueItem.objects.get(pk=first.item_id).status == "rejected"
    Assignment.objects.filter(pk=first.assignment_id).update(answered_at=timezone.now() - timedelta(minutes=5))
    with override_settings(VERIFICATION_UNDO_SECONDS=30), pytest.raises(VerificationError) as error:
        verdict_undo(user=user, queue=queue)
    assert error.value.code == "nothing_to_undo"


@pytest.mark.django_db
def test_gold_items_come_at_the_configured_share_and_never_twice():
    pairs = make_pairs(80)
    queue = queue_create(name="g", overlap=1, selection={"generator": pairs[0].generator_id}, gold_count=20,
                         gold_share=0.25).queue
    (user,) = annotators(1)
    rng = random.Random(11)
    served = []
    for _ in range(40):
        lease = item_claim(queue=queue, user=user, rng=rng)
        served.append(QueueItem.objects.get(pk=lease.item_id).is_gold)
        verdict_submit(user=user, assignment_id=lease.assignment_id, choice="left")
    share = sum(served) / len(served)
    assert abs(share - 0.25) < 4 * math.sqrt(0.25 * 0.75 / len(served))
    gold_ids = list(Assignment.objects.filter(is_gold=True).values_list("item_id", flat=True))
    assert len(gold_ids) == len(set(gold_ids))
    # Gold items take no slot and reach no consensus: their answers are measured against the known answer.
    assert not QueueItem.objects.filter(is_gold=True).exclude(status="pending").exists()
    # Once the gold items are used up the annotator gets regular ones; once those are done, nothing.
    answer_all(queue, user, "left", rng=rng)
    assert Assignment.objects.filter(is_gold=True).count() <= 20
    assert Assignment.objects.filter(is_gold=False, status="answered").count() == 60


@pytest.mark.django_db
def test_adjudication_decides_disputed_items_only():
    pairs = make_pairs(1)
    queue = make_queue(pairs, overlap=2, quorum=2)
    first, second = annotators(2)
    for user, choice in ((first, "both"), (second, "unsure")):
        lease = item_claim(queue=queue, user=user)
        verdict_submit(user=user, assignment_id=lease.assignment_id, choice=choice)
    item = QueueItem.objects.get()
    assert item.status == "disputed"
    researcher = UserFactory(role="researcher")
    item_adjudicate(item=item, status="rejected", decided_by=researcher, note="both images break it")
    item.refresh_from_db()
    assert item.status == "rejected" and item.adjudication.decided_by == researcher
    with pytest.raises(ValidationError):
        item_adjudicate(item=item, status="disputed", decided_by=researcher)
    with pytest.raises(VerificationError):  # an adjudicated answer can no longer be undone
        verdict_undo(user=second, queue=queue)


# --- Statistics against reference implementations ----------------------------------------------------------


@pytest.mark.django_db
def test_queue_statistics_equal_reference_implementations():
    pairs = make_pairs(30)
    queue = queue_create(name="s", overlap=3, quorum=2, selection={"generator": pairs[0].generator_id}, gold_count=6,
                         gold_share=0.2).queue
    people = annotators(5)
    rng = random.Random(5)
    biased = {people[0].pk: 0.9, people[1].pk: 0.2}
    for round_ in range(60):
        user = people[round_ % len(people)]
        lease = item_claim(queue=queue, user=user, rng=rng)
        if lease is None:
            continue
        if rng.random() < 0.1:
            item_skip(user=user, assignment_id=lease.assignment_id, reason="unsure")
            continue
        left = rng.random() < biased.get(user.pk, 0.5)
        choice = rng.choice(["left" if left else "right", "left" if left else "right", "both", "neither", "unsure"])
        verdict_submit(user=user, assignment_id=lease.assignment_id, choice=choice, seconds=rng.uniform(1, 9))
    stats = queue_stats(queue)

    rows = list(Assignment.objects.filter(queue=queue, status="answered").select_related("item")
                .values_list("item_id", "annotator_id", "answer", "choice", "seconds", "is_gold",
                             "item__gold_verified", "item__status"))
    regular = [r for r in rows if not r[5]]
    codes = {a: i for i, a in enumerate(ANSWERS)}
    items = sorted({r[0] for r in regular})
    raters = sorted({r[1] for r in regular})
    matrix = np.full((len(raters), len(items)), np.nan)
    for item, rater, answer, *_ in regular:
        matrix[raters.index(rater), items.index(item)] = codes[answer]
    expected_alpha = krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal",
                                        value_domain=list(range(len(ANSWERS))))
    assert stats.krippendorff_alpha == pytest.approx(expected_alpha)
    complete = [i for i in range(len(items)) if (~np.isnan(matrix[:, i])).sum() == 3]
    if complete and len(complete) == len([i for i in range(len(items)) if (~np.isnan(matrix[:, i])).sum() >= 2]):
        table, _ = aggregate_raters(np.array([[int(v) for v in matrix[:, i] if not np.isnan(v)] for i in complete]),
                                    n_cat=len(ANSWERS))
        assert stats.fleiss_kappa == pytest.approx(fleiss_kappa(table))

    by_person = {person.user_id: person for person in stats.annotators}
    position = {user_id: i for i, user_id in enumerate(p.user_id for p in stats.annotators)}
    for a in raters:
        for b in raters:
            if a == b:
                continue
            shared = sorted({r[0] for r in regular if r[1] == a} & {r[0] for r in regular if r[1] == b})
            got = stats.kappa[position[a]][position[b]]
            if not shared:
                assert math.isnan(got)
                continue
            left = [next(r[2] for r in regular if r[0] == i and r[1] == a) for i in shared]
            right = [next(r[2] for r in regular if r[0] == i and r[1] == b) for i in shared]
            expected = cohen_kappa_score(left, right, labels=ANSWERS)
            assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)
            assert stats.shared[position[a]][position[b]] == len(shared)

    for user_id, person in by_person.items():
        own = [r for r in rows if r[1] == user_id]
        skipped = Assignment.objects.filter(queue=queue, annotator_id=user_id, status="skipped").count()
        assert person.answered == len(own) and person.skipped == skipped
        assert person.skip_rate == pytest.approx(skipped / (len(own) + skipped))
        # Seconds are read as whole milliseconds.
        assert person.median_seconds == pytest.approx(statistics.median(r[4] for r in own), abs=1e-3)
        gold = [r for r in own if r[5]]
        if gold:
            right_answers = sum((r[2] == "winner") == r[6] for r in gold)
            assert person.gold_accuracy == pytest.approx(right_answers / len(gold))
        else:
            assert math.isnan(person.gold_accuracy)
        decided = [r for r in own if not r[5] and r[7] in ("verified", "rejected")]
        if decided:
            same = sum((r[2] == "winner") == (r[7] == "verified") for r in decided)
            assert person.consensus_agreement == pytest.approx(same / len(decided))
        picks = [r[3] for r in own if r[3] in ("left", "right")]
        if picks:
            assert person.position_bias == pytest.approx(picks.count("left") / len(picks))
    assert sum(count for _, count in stats.throughput) == len(rows)
    assert sum(stats.answers.values()) == len(regular)


@pytest.mark.django_db
def test_statistics_of_an_empty_queue_are_undefined_not_errors():
    pairs = make_pairs(2)
    queue = make_queue(pairs)
    stats = queue_stats(queue)
    assert stats.verdicts == 0 and stats.annotators == [] and stats.kappa == []
    assert math.isnan(stats.fleiss_kappa) and math.isnan(stats.krippendorff_alpha)


# --- Concurrency --------------------------------------------------------------------------------------------

THREADS = 32


@pytest.mark.django_db(transaction=True)
def test_32_threads_claiming_and_answering_never_overfill_duplicate_or_lose_a_verdict():
    pairs = make_pairs(60, seeds_per_prompt=2)
    queue = make_queue(pairs, overlap=3, quorum=2, lease_minutes=10)
    people = annotators(THREADS)
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []
    submitted: list[tuple[int, int]] = []  # (annotator, assignment) of every verdict a thread stored
    lock = threading.Lock()

    def finished(user) -> bool:
        # Nothing for this annotator right now is not the end: an item fully leased by others reopens when one of
        # them skips it. The annotator is done once every incomplete item is one they have had.
        seen = Assignment.objects.filter(queue=queue, annotator=user).values("item_id")
        return not QueueItem.objects.filter(queue=queue, done__lt=3).exclude(pk__in=seen).exists()

    def work(user, seed):
        rng = random.Random(seed)
        try:
            start.wait()
            while True:
                lease = item_claim(queue=queue, user=user, rng=rng)
                if lease is None:
                    if finished(user):
                        break
                    time.sleep(0.02)
                    continue
                if rng.random() < 0.1:  # some skip: the item must still be completed by others
                    item_skip(user=user, assignment_id=lease.assignment_id, reason="busy")
                    continue
                key = f"{user.pk}-{lease.assignment_id}"
                choice = rng.choice(["left", "right", "both", "neither", "unsure"])
                result = verdict_submit(user=user, assignment_id=lease.assignment_id, choice=choice, client_key=key,
                                        seconds=rng.uniform(0.5, 3))
                if rng.random() < 0.3:  # a network retry of the same POST
                    retry = verdict_submit(user=user, assignment_id=lease.assignment_id, choice=choice,
                                           client_key=key)
                    assert retry.replayed and retry.assignment_id == result.assignment_id
                with lock:
                    submitted.append((user.pk, result.assignment_id))
        except BaseException as exc:  # noqa: BLE001 - reported below, with the thread's traceback
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(user, i)) for i, user in enumerate(people)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []

    answered = Assignment.objects.filter(queue=queue, status=AssignmentStatus.ANSWERED)
    items = list(QueueItem.objects.filter(queue=queue))
    assert len(items) == 60
    per_item = {item.pk: answered.filter(item=item).count() for item in items}
    assert max(per_item.values()) <= 3, "an item was over-filled"
    assert all(count == 3 for count in per_item.values()), "an item was left incomplete"
    assert all((item.taken, item.done, item.open) == (3, 3, False) for item in items)
    pairs_seen = list(answered.values_list("item_id", "annotator_id"))
    assert len(pairs_seen) == len(set(pairs_seen)) == 180, "an annotator answered an item twice"
    assert sorted(a for _, a in submitted) == sorted(answered.values_list("pk", flat=True)), "a verdict was lost"
    assert not Assignment.objects.filter(queue=queue, status=AssignmentStatus.LEASED).exists()
    assert all(item.status in (ItemStatus.VERIFIED, ItemStatus.REJECTED, ItemStatus.DISPUTED) for item in items)
    assert set(answered.values_list("answer", flat=True)) <= set(Answer.values)


@pytest.mark.django_db(transaction=True)
def test_the_same_annotator_asking_from_many_threads_at_once_gets_one_lease():
    pairs = make_pairs(10)
    queue = make_queue(pairs, overlap=1)
    (user,) = annotators(1)
    start = threading.Barrier(8)
    leases, errors = [], []

    def ask():
        try:
            start.wait()
            leases.append(item_claim(queue=queue, user=user))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len({lease.assignment_id for lease in leases}) == 1
    assert Assignment.objects.filter(annotator=user).count() == 1
    assert sum(QueueItem.objects.values_list("taken", flat=True)) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("prepared", [True, False])
def test_statements_work_prepared_or_not_and_after_a_reconnect(settings, prepared):
    settings.VERIFICATION_PREPARED_STATEMENTS = prepared
    pairs = make_pairs(3)
    queue = make_queue(pairs, overlap=1)
    (user,) = annotators(1)
    lease = item_claim(queue=queue, user=user)
    connection.close()  # a new connection must prepare its statements again
    assert item_claim(queue=queue, user=user).assignment_id == lease.assignment_id
    verdict_submit(user=user, assignment_id=lease.assignment_id, choice="left", client_key="p")
    connection.close()
    following = item_claim(queue=queue, user=user)
    item_skip(user=user, assignment_id=following.assignment_id, reason="r")
    assert list(Assignment.objects.order_by("pk").values_list("status", flat=True)) == ["answered", "skipped"]
