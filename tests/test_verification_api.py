"""The verification endpoints of /api/v1/: queue management, progress and statistics for researchers, and the
annotation client's round trip (next, verdict, skip, undo, images) for annotators, with what each role may
reach and what an annotator must never be told (which image came from the perfect prompt)."""

import io
import json
import uuid
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from PIL import Image

from spatiallab.verification.models import (
    Answer,
    Assignment,
    AssignmentStatus,
    ItemStatus,
    QueueItem,
    QueueStatus,
    VerificationQueue,
)
from spatiallab.verification.selectors import queue_progress, queue_stats, stats_as_dict
from tests.factories import UserFactory, token_client
from tests.verification_data import make_pairs, make_queue

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[1]
QUEUES = "/api/v1/queues/"
ITEM_KEYS = {"assignment", "expires_at", "resumed", "prompt", "prompt_html", "edited", "left_image",
             "right_image", "width", "height", "instructions"}
BRIEF_KEYS = {"id", "name", "instructions", "my_answered", "open_items"}


def pairs(count: int, **options):
    """make_pairs with a prompt set of its own (several in one test)."""
    return make_pairs(count, name=f"set-{uuid.uuid4().hex[:8]}", **options)


def queue_url(queue, suffix: str = "") -> str:
    return f"{QUEUES}{queue.pk}/{suffix}"


def assignment_url(assignment_id: int, suffix: str) -> str:
    return f"/api/v1/assignments/{assignment_id}/{suffix}"


def image_colour(response) -> str:
    assert response.status_code == 200, response.status_code
    data = b"".join(response.streaming_content)
    red, _, blue = Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0))
    return "red" if red > blue else "blue"


def winner_side(client, item: dict) -> str:
    """The side showing the perfect prompt's image, found the only way a client could: by looking at it
    (make_pairs paints winner images red and loser images blue)."""
    return "left" if image_colour(client.get(item["left_image"])) == "red" else "right"


def claim(client, queue) -> dict | None:
    response = client.post(queue_url(queue, "next/"))
    if response.status_code == 204:
        return None
    assert response.status_code == 200, response.content
    return response.json()


def verdict(client, assignment_id: int, choice: str, **extra):
    return client.post(assignment_url(assignment_id, "verdict/"),
                       {"choice": choice, "seconds": 2.5, "client_key": uuid.uuid4().hex, **extra}, format="json")


@pytest.fixture
def ann_api(annotator):
    return token_client(annotator)


@pytest.fixture
def other():
    return UserFactory(username="other", role="annotator")


@pytest.fixture
def other_api(other):
    return token_client(other)


# --- Creating and editing queues ---------------------------------------------------------------------------


def test_create_a_queue_with_gold_drawn_from_ground_truth(api, annotator):
    made = pairs(6, ground_truth=True)
    response = api.post(QUEUES, {
        "name": "spatial v1", "instructions": "Look at the left/right relations.", "overlap": 2,
        "gold_count": 2, "gold_share": 0.2, "priority": 5, "annotators": ["ann"],
        "selection": {"generator": made[0].generator_id, "n_edits": "1"}}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["item_count"], body["gold_count"]) == (4, 2)
    assert body["quorum"] == 2 and body["overlap"] == 2 and body["status"] == "active"
    assert body["annotators"] == ["ann"] and body["created_by"] == "res"
    assert body["selection"] == {"generator": made[0].generator_id, "n_edits": "1"}
    queue = VerificationQueue.objects.get(pk=body["id"])
    gold = QueueItem.objects.filter(queue=queue, is_gold=True)
    assert gold.count() == 2 and all(item.gold_verified is True for item in gold)
    assert QueueItem.objects.filter(queue=queue, is_gold=False).count() == 4


def test_create_with_listed_gold_and_a_limit(api):
    made = pairs(5, ground_truth=False)
    response = api.post(QUEUES, {
        "name": "limited", "overlap": 1, "selection": {"generator": made[0].generator_id}, "limit": 2,
        "gold": [{"pair": made[0].pk, "verified": True}, {"pair": made[1].pk, "verified": False}]},
        format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["item_count"], response.json()["gold_count"]) == (2, 2)
    gold = dict(QueueItem.objects.filter(is_gold=True).values_list("pair_id", "gold_verified"))
    assert gold == {made[0].pk: True, made[1].pk: False}
    # Gold drawn from the renderer's ground truth carries it: here every pair is known to be broken.
    response = api.post(QUEUES, {"name": "drawn", "selection": {"generator": made[0].generator_id},
                                 "gold_count": 1}, format="json")
    assert response.status_code == 201, response.content
    queue = VerificationQueue.objects.get(name="drawn")
    assert list(queue.items.filter(is_gold=True).values_list("gold_verified", flat=True)) == [False]


BAD_PAYLOADS = [
    ({"name": ""}, "name"),
    ({"name": "taken"}, "name"),
    ({"overlap": 0}, "overlap"),
    ({"overlap": 3, "quorum": 4}, "quorum"),
    ({"lease_minutes": 0}, "lease_minutes"),
    ({"gold_share": 0.3}, "gold_share"),
    ({"gold_count": 50}, "gold_count"),
    ({"gold_count": -1}, "gold_count"),
    ({"limit": 0}, "limit"),
    ({"priority": 2**40}, "priority"),
    ({"annotators": ["ghost"]}, "annotators"),
    ({"annotators": ["a\x00"]}, "annotators"),  # PostgreSQL cannot look up a username holding NUL
    ({"selection": {"colour": "red"}}, "selection"),
    ({"selection": {"n_edits": "many"}}, "selection"),
    ({"selection": {"generator": 10**9}}, "selection"),  # no pairs: raised inside the transaction
    ({"gold": [{"pair": 10**9, "verified": True}]}, "gold"),
    ({"gold": [{"pair": 1}]}, "gold"),
    ({"overlap": "three"}, "overlap"),
]


@pytest.mark.parametrize(("change", "field"), BAD_PAYLOADS)
def test_bad_queue_payloads_name_the_field_and_store_nothing(api, change, field):
    made = pairs(4)
    make_queue(made, name="taken")
    before = (VerificationQueue.objects.count(), QueueItem.objects.count(),
              VerificationQueue.annotators.through.objects.count())
    payload = {"name": "new", "selection": {"generator": made[0].generator_id}, **change}
    response = api.post(QUEUES, payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert (VerificationQueue.objects.count(), QueueItem.objects.count(),
            VerificationQueue.annotators.through.objects.count()) == before


def test_a_json_list_is_not_a_queue(api):
    response = api.post(QUEUES, [{"name": "x"}], format="json")
    assert response.status_code == 400 and VerificationQueue.objects.count() == 0


def test_researchers_edit_a_queue_until_its_design_is_fixed(api, ann_api, annotator):
    queue = make_queue(pairs(3), name="editable", overlap=2)
    make_queue(pairs(1), name="other queue", overlap=1)
    url = queue_url(queue)
    response = api.patch(url, {"priority": 7, "status": "paused", "annotators": ["ann"], "overlap": 3},
                         format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["priority"], body["status"], body["annotators"], body["overlap"]) == (7, "paused", ["ann"], 3)
    for change, field in (({"selection": {}}, "selection"), ({"name": "other queue"}, "name"),
                          ({"annotators": ["ghost"]}, "annotators"), ({"status": "gone"}, "status"),
                          ({"quorum": 5}, "quorum"), ({"item_count": 1}, "item_count")):
        response = api.patch(url, change, format="json")
        assert response.status_code == 400 and field in response.json(), (change, response.content)
    assert api.patch(url, {"status": "active"}, format="json").status_code == 200
    item = claim(ann_api, queue)
    assert verdict(ann_api, item["assignment"], "both").status_code == 201
    response = api.patch(url, {"overlap": 2}, format="json")
    assert response.status_code == 400 and "overlap" in response.json()
    queue.refresh_from_db()
    assert (queue.overlap, queue.quorum, queue.priority) == (3, 2, 7)


# --- Who reaches what ---------------------------------------------------------------------------------------


def test_annotators_see_only_their_queues_in_a_reduced_form(api, ann_api, other_api, annotator, other):
    open_queue = make_queue(pairs(2), name="open to all", overlap=1, instructions="Be careful.")
    restricted = make_queue(pairs(2), name="others only", overlap=1, annotators=[other])
    paused = make_queue(pairs(2), name="paused", overlap=1)
    paused.status = QueueStatus.PAUSED
    paused.save(update_fields=["status"])

    listed = ann_api.get(QUEUES).json()
    assert listed["count"] == 1 and [q["name"] for q in listed["results"]] == ["open to all"]
    assert set(listed["results"][0]) == BRIEF_KEYS
    assert listed["results"][0] == {"id": open_queue.pk, "name": "open to all", "instructions": "Be careful.",
                                    "my_answered": 0, "open_items": 2}
    assert ann_api.get(QUEUES, {"status": "paused"}).json()["count"] == 0
    assert ann_api.get(QUEUES, {"status": "active"}).json()["count"] == 1
    assert set(ann_api.get(queue_url(open_queue)).json()) == BRIEF_KEYS
    for queue in (restricted, paused):
        assert ann_api.get(queue_url(queue)).status_code == 404
        assert ann_api.post(queue_url(queue, "next/")).status_code == 404
        assert ann_api.post(queue_url(queue, "undo/")).status_code == 404
    assert {q["name"] for q in other_api.get(QUEUES).json()["results"]} == {"open to all", "others only"}
    assert claim(other_api, restricted) is not None

    # Researchers see and manage every queue, but annotate only the queues open to them.
    everything = api.get(QUEUES).json()
    assert everything["count"] == 3 and {"item_count", "verified_count", "status"} <= set(everything["results"][0])
    assert [q["name"] for q in api.get(QUEUES, {"status": "paused"}).json()["results"]] == ["paused"]
    assert api.get(QUEUES, {"status": "nonsense"}).status_code == 400
    assert api.post(queue_url(restricted, "next/")).status_code == 404
    assert api.get(queue_url(restricted)).json()["annotators"] == ["other"]


def test_annotators_cannot_manage_queues_or_read_statistics(api, ann_api, annotator):
    queue = make_queue(pairs(2), name="q", overlap=1)
    item = QueueItem.objects.filter(queue=queue).first()
    count = VerificationQueue.objects.count()
    assert ann_api.post(QUEUES, {"name": "mine", "selection": {}}, format="json").status_code == 403
    assert ann_api.patch(queue_url(queue), {"priority": 9}, format="json").status_code == 403
    for suffix in ("stats/", "progress/", "items/"):
        assert ann_api.get(queue_url(queue, suffix)).status_code == 403, suffix
    assert ann_api.post(f"/api/v1/items/{item.pk}/adjudicate/", {"status": "verified"},
                        format="json").status_code == 403
    assert ann_api.post(f"/api/v1/items/{item.pk}/restore/").status_code == 403
    assert ann_api.get(f"/api/v1/items/{item.pk}/").status_code == 403
    assert VerificationQueue.objects.count() == count and VerificationQueue.objects.get().priority == 0
    # No role at all: nothing; no credentials: 401.
    nobody = token_client(UserFactory(username="nobody"))
    assert nobody.get(QUEUES).status_code == 403
    assert nobody.post(queue_url(queue, "next/")).status_code == 403
    from rest_framework.test import APIClient

    assert APIClient().get(QUEUES).status_code == 401
    assert api.get(queue_url(queue, "items/")).status_code == 200
    assert api.get(f"{QUEUES}999999/items/").status_code == 404


# --- The annotation round trip ------------------------------------------------------------------------------


def test_a_full_round_trip_over_rest_reaches_consensus(api, ann_api, other_api, annotator, other):
    queue = make_queue(pairs(3), name="round trip", overlap=2, instructions="Check the relations.")
    clients = {"ann": ann_api, "other": other_api}
    done: set[str] = set()
    answered = 0
    while len(done) < len(clients):
        for name, client in clients.items():
            if name in done:
                continue
            item = claim(client, queue)
            if item is None:
                done.add(name)
                continue
            assert set(item) == ITEM_KEYS and item["resumed"] is False
            assert item["instructions"] == "Check the relations." and item["prompt"]
            assert item["left_image"].startswith("http://testserver/api/v1/assignments/")
            text = json.dumps(item)
            assert "winner" not in text and "loser" not in text
            response = verdict(client, item["assignment"], winner_side(client, item))
            assert response.status_code == 201, response.content
            assert set(response.json()) == {"assignment", "choice", "replayed"}
            assert "winner" not in response.content.decode() and "loser" not in response.content.decode()
            answered += 1
    assert answered == 6
    items = QueueItem.objects.filter(queue=queue)
    assert {(item.status, item.done) for item in items} == {(ItemStatus.VERIFIED, 2)}
    assert set(Assignment.objects.filter(queue=queue).values_list("answer", flat=True)) == {Answer.WINNER}
    assert claim(token_client(UserFactory(username="late", role="annotator")), queue) is None
    # The annotator's list shows their own answers only.
    assert ann_api.get(queue_url(queue)).json()["my_answered"] == 3
    progress = api.get(queue_url(queue, "progress/")).json()
    assert progress == queue_progress(queue)
    assert progress["by_status"]["verified"] == 3 and progress["percent"] == 100.0


def test_next_resumes_the_live_lease(ann_api, annotator):
    queue = make_queue(pairs(2), name="q", overlap=1)
    first = claim(ann_api, queue)
    again = claim(ann_api, queue)
    assert again["assignment"] == first["assignment"] and again["resumed"] is True
    assert Assignment.objects.filter(annotator=annotator).count() == 1


def test_a_retried_verdict_is_stored_once(ann_api, other_api, annotator):
    queue = make_queue(pairs(3), name="q", overlap=1)
    item = claim(ann_api, queue)
    url = assignment_url(item["assignment"], "verdict/")
    payload = {"choice": "left", "seconds": 3.0, "client_key": "retry-1"}
    first = ann_api.post(url, payload, format="json")
    assert first.status_code == 201 and first.json() == {"assignment": item["assignment"], "choice": "left",
                                                         "replayed": False}
    again = ann_api.post(url, payload, format="json")
    assert again.status_code == 200 and again.json() == {"assignment": item["assignment"], "choice": "left",
                                                         "replayed": True}
    assert Assignment.objects.filter(status=AssignmentStatus.ANSWERED).count() == 1
    assert QueueItem.objects.get(assignments__pk=item["assignment"]).done == 1
    # Without the key a second post is refused, with a stable code; the key on another item is refused too.
    response = ann_api.post(url, {"choice": "right"}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "already_answered"
    second = claim(ann_api, queue)
    response = ann_api.post(assignment_url(second["assignment"], "verdict/"), payload, format="json")
    assert response.status_code == 400 and response.json()["code"] == "key_reused"
    # Bad input names the field; a lease that is not (or no longer) the caller's is gone.
    response = ann_api.post(assignment_url(second["assignment"], "verdict/"), {"choice": "up"}, format="json")
    assert response.status_code == 400 and "choice" in response.json()
    response = other_api.post(assignment_url(second["assignment"], "verdict/"), {"choice": "left"}, format="json")
    assert response.status_code == 410 and response.json()["code"] == "lease_expired"
    assert Assignment.objects.get(pk=second["assignment"]).status == AssignmentStatus.LEASED
    assert ann_api.post(assignment_url(10**17, "verdict/"), {"choice": "left"}, format="json").status_code == 410
    assert ann_api.post(assignment_url(10**19, "verdict/"), {"choice": "left"}, format="json").status_code == 404


def test_skip_and_broken_flag(api, ann_api, other_api, annotator):
    queue = make_queue(pairs(4), name="q", overlap=1)
    first = claim(ann_api, queue)
    response = ann_api.post(assignment_url(first["assignment"], "skip/"), {"reason": "unsure"}, format="json")
    assert response.status_code == 200 and response.json() == {"assignment": first["assignment"], "broken": False}
    skipped_item = Assignment.objects.get(pk=first["assignment"]).item
    assert (skipped_item.taken, skipped_item.open) == (0, True)
    response = ann_api.post(assignment_url(first["assignment"], "skip/"), {}, format="json")
    assert response.status_code == 409 and response.json()["code"] == "already_skipped"

    second = claim(ann_api, queue)
    assert Assignment.objects.get(pk=second["assignment"]).item_id != skipped_item.pk  # never seen again
    response = ann_api.post(assignment_url(second["assignment"], "skip/"), {"broken": True}, format="json")
    assert response.status_code == 200 and response.json()["broken"] is True
    flagged = Assignment.objects.get(pk=second["assignment"]).item
    assert (flagged.status, flagged.flags, flagged.open) == (ItemStatus.FLAGGED, 1, False)
    assert Assignment.objects.get(pk=second["assignment"]).skip_reason == "broken image"

    # A long reason with the broken flag still fits the column (PostgreSQL refuses a longer value).
    third = claim(ann_api, queue)
    response = ann_api.post(assignment_url(third["assignment"], "skip/"), {"reason": "x" * 200, "broken": True},
                            format="json")
    assert response.status_code == 200, response.content
    still_flagged = Assignment.objects.get(pk=third["assignment"])
    assert still_flagged.skip_reason.startswith("broken image: xxx") and len(still_flagged.skip_reason) <= 200
    response = ann_api.post(assignment_url(third["assignment"], "skip/"), {"reason": "x" * 201}, format="json")
    assert response.status_code == 400 and "reason" in response.json()

    listed = api.get(queue_url(queue, "items/"), {"status": "flagged"}).json()
    assert sorted(row["id"] for row in listed["results"]) == sorted([flagged.pk, still_flagged.item_id])
    assert {row["flags"] for row in listed["results"]} == {1}
    response = api.post(f"/api/v1/items/{flagged.pk}/restore/")
    assert response.status_code == 200 and response.json()["status"] == "pending"
    flagged.refresh_from_db()
    assert flagged.open is True
    response = api.post(f"/api/v1/items/{flagged.pk}/restore/")
    assert response.status_code == 400 and "item" in response.json()
    # The restored item is served again (to someone who has not seen it); the flagged one is not.
    served = set()
    while (item := claim(other_api, queue)) is not None:
        served.add(Assignment.objects.get(pk=item["assignment"]).item_id)
        assert verdict(other_api, item["assignment"], "neither").status_code == 201
    assert flagged.pk in served and still_flagged.item_id not in served and len(served) == 3


def test_undo_gives_back_the_last_answer(ann_api, annotator):
    queue = make_queue(pairs(3), name="q", overlap=1)
    first = claim(ann_api, queue)
    assert verdict(ann_api, first["assignment"], "left").status_code == 201
    second = claim(ann_api, queue)
    response = ann_api.post(queue_url(queue, "undo/"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == ITEM_KEYS and body["assignment"] == first["assignment"] and body["resumed"] is True
    assert body["left_image"] == first["left_image"] and body["prompt"] == first["prompt"]
    assert not Assignment.objects.filter(pk=second["assignment"]).exists()  # given back to the queue
    undone = Assignment.objects.get(pk=first["assignment"])
    assert (undone.status, undone.answer, undone.item.done) == (AssignmentStatus.LEASED, "", 0)
    assert claim(ann_api, queue)["assignment"] == first["assignment"]
    response = ann_api.post(queue_url(queue, "undo/"))
    assert response.status_code == 409 and response.json() == {
        "code": "nothing_to_undo", "detail": response.json()["detail"]}
    assert verdict(ann_api, first["assignment"], "right").status_code == 201


def test_images_follow_the_lease_order_and_only_for_the_owner(api, ann_api, other_api, annotator):
    queue = make_queue(pairs(4), name="q", overlap=2)
    seen_orders = set()
    for _ in range(4):
        item = claim(ann_api, queue)
        winner_left = Assignment.objects.get(pk=item["assignment"]).winner_left
        seen_orders.add(winner_left)
        left, right = ann_api.get(item["left_image"]), ann_api.get(item["right_image"])
        assert left["Content-Type"] == "image/png"
        assert image_colour(left) == ("red" if winner_left else "blue")
        assert image_colour(right) == ("blue" if winner_left else "red")
        thumb = ann_api.get(assignment_url(item["assignment"], "image/left-thumb/"))
        assert thumb["Content-Type"] == "image/webp"
        assert image_colour(thumb) == ("red" if winner_left else "blue")
        for client in (other_api, api):
            assert client.get(item["left_image"]).status_code == 404
        assert ann_api.get(assignment_url(item["assignment"], "image/top/")).status_code == 404
        assert verdict(ann_api, item["assignment"], "unsure").status_code == 201
    assert ann_api.get(assignment_url(10**15, "image/left/")).status_code == 404


# --- Researchers: items, statistics, adjudication -----------------------------------------------------------


def test_stats_endpoint_equals_queue_stats(api, ann_api, other_api, annotator, other):
    queue = make_queue(pairs(4), name="stats", overlap=2)
    for client, honest in ((ann_api, True), (other_api, False)):
        while (item := claim(client, queue)) is not None:
            choice = winner_side(client, item) if honest else "left"
            assert verdict(client, item["assignment"], choice).status_code == 201
    response = api.get(queue_url(queue, "stats/"))
    assert response.status_code == 200, response.content
    body = response.json()
    expected = json.loads(json.dumps({**stats_as_dict(queue_stats(queue)), "progress": queue_progress(queue)}))
    assert body == expected
    assert body["verdicts"] == 8 and body["items_rated"] == 4
    assert {row["username"] for row in body["annotators"]} == {"ann", "other"}
    assert body["kappa"]["annotators"] == [row["username"] for row in body["annotators"]]
    assert body["progress"]["answered"] == 8


def test_adjudicate_a_disputed_item(api, ann_api, other_api, annotator, other):
    queue = make_queue(pairs(2), name="dispute", overlap=2)
    for client, honest in ((ann_api, True), (other_api, False)):
        while (item := claim(client, queue)) is not None:
            assert verdict(client, item["assignment"], winner_side(client, item) if honest else "both",
                           seconds=4.0).status_code == 201
    disputed = api.get(queue_url(queue, "items/"), {"status": "disputed", "is_gold": "false"}).json()
    assert disputed["count"] == 2
    row = disputed["results"][0]
    assert row["pair"] in set(queue.items.values_list("pair_id", flat=True))
    assert row["adjudication"] is None and row["done"] == 2
    assert sorted((v["annotator"], v["answer"]) for v in row["verdicts"]) == [("ann", "winner"), ("other", "both")]
    assert all(v["seconds"] == 4.0 and v["choice"] and v["answered_at"] for v in row["verdicts"])

    url = f"/api/v1/items/{row['id']}/adjudicate/"
    response = api.post(url, {"status": "pending"}, format="json")
    assert response.status_code == 400 and "status" in response.json()
    response = api.post(url, {"status": "verified", "note": "the red ball is on the left"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "verified"
    assert body["adjudication"]["decided_by"] == "res" and body["adjudication"]["note"].startswith("the red")
    assert QueueItem.objects.get(pk=row["id"]).status == ItemStatus.VERIFIED
    assert api.get(queue_url(queue, "items/"), {"status": "disputed"}).json()["count"] == 1
    assert api.get(f"/api/v1/items/{row['id']}/").json()["adjudication"]["status"] == "verified"

    pending = make_queue(pairs(1), name="pending", overlap=2).items.get()
    response = api.post(f"/api/v1/items/{pending.pk}/adjudicate/", {"status": "rejected"}, format="json")
    assert response.status_code == 400 and "item" in response.json()
    assert api.post("/api/v1/items/999999/adjudicate/", {"status": "rejected"}, format="json").status_code == 404


def test_lists_run_a_fixed_number_of_queries(api, ann_api, other_api, annotator, other):
    def queries(client, url) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    small = make_queue(pairs(2), name="small", overlap=2, annotators=[annotator, other])
    for client in (ann_api, other_api):
        while (item := claim(client, small)) is not None:
            verdict(client, item["assignment"], "left")
    one_queue = queries(api, QUEUES), queries(ann_api, QUEUES)
    small_items = queries(api, queue_url(small, "items/"))
    big = make_queue(pairs(6), name="big", overlap=2, annotators=[annotator, other])
    make_queue(pairs(1), name="third", overlap=1)
    for client in (ann_api, other_api):
        while (item := claim(client, big)) is not None:
            verdict(client, item["assignment"], "right")
    assert (queries(api, QUEUES), queries(ann_api, QUEUES)) == one_queue
    assert queries(api, queue_url(big, "items/")) == small_items


def test_openapi_schema_lists_the_verification_endpoints(api):
    # tests/test_api.py validates the whole schema with --fail-on-warn; here: the endpoints are in it.
    response = api.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {"/api/v1/queues/", "/api/v1/queues/{id}/next/", "/api/v1/queues/{id}/undo/",
            "/api/v1/queues/{id}/stats/", "/api/v1/queues/{queue_pk}/items/", "/api/v1/assignments/{id}/verdict/",
            "/api/v1/assignments/{id}/skip/", "/api/v1/assignments/{id}/image/{side}/",
            "/api/v1/items/{id}/adjudicate/", "/api/v1/items/{id}/restore/"} <= set(paths)
    assert set(paths["/api/v1/queues/{id}/next/"]["post"]["responses"]) >= {"200", "204", "404"}
