"""The researcher pages for verification queues: the list with the create form, a queue's page (edit, pause,
items, flagged items), adjudication and the statistics page.

Bad input answers 400 naming the field and stores nothing; annotators get 403 everywhere and change nothing; the
list keeps a constant number of queries however many queues it shows.
"""

import json
import random
import re
from html import unescape
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from spatiallab.verification.models import (
    Adjudication,
    Assignment,
    ItemStatus,
    QueueItem,
    QueueStatus,
    VerificationQueue,
)
from spatiallab.verification.selectors import queue_stats, stats_as_dict
from spatiallab.verification.services import item_claim, item_skip, verdict_submit
from spatiallab.verification.views import hourly, segments
from tests.factories import GeneratorFactory, UserFactory
from tests.verification_data import make_pairs, make_queue

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def url(name, *args):
    return reverse(name, args=args)


def html(response) -> str:
    return response.content.decode()


def text(response) -> str:
    """The page's text without tags, whitespace squeezed (for "the page says ..." checks)."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html(response))))


def answer(queue, user, what: str, *, seconds: float = 4.0):
    """The annotator claims their next item and answers `what` in terms of the pair (winner, loser, both,
    neither, unsure), clicking the side the lease put the perfect prompt's image on."""
    lease = item_claim(queue=queue, user=user, rng=random.Random(7))
    assert lease is not None
    if what == "winner":
        choice = "left" if lease.winner_left else "right"
    elif what == "loser":
        choice = "right" if lease.winner_left else "left"
    else:
        choice = what
    verdict_submit(user=user, assignment_id=lease.assignment_id, choice=choice, seconds=seconds)
    return lease


def annotators(count: int, prefix: str = "a"):
    return [UserFactory(username=f"{prefix}{i}", role="annotator") for i in range(1, count + 1)]


def answer_items(queue, people, rows):
    """Each row: the answers of `people` (in order) on the next item. Claims serve the lowest open rank, so
    all of them answer the same item before the next one starts."""
    items = []
    for answers in rows:
        leases = [answer(queue, person, what) for person, what in zip(people, answers, strict=True)]
        assert len({lease.item_id for lease in leases}) == 1
        items.append(QueueItem.objects.get(pk=leases[0].item_id))
    return items


@pytest.fixture
def res_client(client, researcher):
    client.force_login(researcher)
    return client


@pytest.fixture
def pairs():
    return make_pairs(6, ground_truth=True, name="pages-pairs")


def create_data(pairs, **overrides) -> dict:
    data = {"name": "Kitchen check", "instructions": "Look at the mug.", "overlap": "3", "quorum": "",
            "lease_minutes": "10", "gold_share": "0.2", "gold_count": "2", "gold_pairs": "", "priority": "5",
            "generator": str(pairs[0].generator_id), "prompt_set": "", "job": "", "rule": "", "n_edits": "",
            "limit": ""}
    data.update(overrides)
    return data


# --- Access ------------------------------------------------------------------------------------------------------


def test_annotators_get_403_everywhere_and_change_nothing(client, annotator, pairs):
    queue = make_queue(pairs, name="Q")
    item = queue.items.first()
    client.force_login(annotator)
    for name, args in [("queue-list", ()), ("queue-detail", (queue.pk,)), ("queue-adjudicate", (queue.pk,)),
                       ("queue-stats", (queue.pk,)), ("queue-progress", (queue.pk,)), ("queue-pair-count", ())]:
        assert client.get(url(name, *args)).status_code == 403, name
    posts = [("queue-create", (), create_data(pairs, name="Sneaky")),
             ("queue-edit", (queue.pk,), {"name": "Renamed", "status": "closed", "priority": "1",
                                          "lease_minutes": "5", "gold_share": "0", "overlap": "3", "quorum": "2"}),
             ("queue-status", (queue.pk,), {"status": "closed"}),
             ("queue-item-restore", (queue.pk, item.pk), {}),
             ("queue-adjudicate-item", (queue.pk, item.pk), {"status": "verified"})]
    for name, args, data in posts:
        assert client.post(url(name, *args), data).status_code == 403, name
    queue.refresh_from_db()
    assert (queue.name, queue.status) == ("Q", QueueStatus.ACTIVE)
    assert VerificationQueue.objects.count() == 1 and not Adjudication.objects.exists()


def test_anonymous_users_are_sent_to_log_in(client):
    response = client.get(url("queue-list"))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_admins_reach_the_pages(client, admin_user, pairs):
    queue = make_queue(pairs, name="Q")
    client.force_login(admin_user)
    for name, args in [("queue-list", ()), ("queue-detail", (queue.pk,)), ("queue-adjudicate", (queue.pk,)),
                       ("queue-stats", (queue.pk,))]:
        assert client.get(url(name, *args)).status_code == 200, name


# --- The list and the create form ------------------------------------------------------------------------------


def test_list_page_shows_the_create_form_with_defaults_and_only_annotators_to_choose(res_client, pairs):
    UserFactory(username="ann-one", role="annotator")
    UserFactory(username="res-two", role="researcher")
    response = res_client.get(url("queue-list"))
    assert response.status_code == 200
    form = response.context["form"]
    assert (form["overlap"].value(), form["lease_minutes"].value(), form["quorum"].value()) == (3, 10, None)
    choices = [label for _, label in form.fields["annotators"].choices]
    assert choices == ["ann-one"]
    page = html(response)
    assert 'id="queue-create-form"' in page and 'hx-get="/dashboard/queues/pair-count/"' in page
    assert "No queues yet" in page


def test_create_queue_stores_items_gold_and_annotators(res_client, researcher, pairs):
    first, second = annotators(2)
    data = create_data(pairs, annotators=[str(first.pk), str(second.pk)])
    response = res_client.post(url("queue-create"), data)
    queue = VerificationQueue.objects.get()
    assert response.status_code == 302 and response["Location"] == url("queue-detail", queue.pk)
    assert (queue.name, queue.instructions, queue.overlap, queue.quorum, queue.lease_minutes) == (
        "Kitchen check", "Look at the mug.", 3, 2, 10)
    assert (queue.gold_share, queue.priority, queue.created_by) == (0.2, 5, researcher)
    assert set(queue.annotators.all()) == {first, second}
    assert queue.selection == {"generator": pairs[0].generator_id}
    assert queue.items.filter(is_gold=False).count() == 4
    gold = queue.items.filter(is_gold=True)
    assert gold.count() == 2 and set(gold.values_list("gold_verified", flat=True)) == {True}

    page = res_client.get(response["Location"])
    assert "Queue “Kitchen check” created with 4 pairs and 2 gold." in text(page)
    assert "a1, a2" in text(page)


def test_create_through_htmx_redirects_the_whole_page(res_client, pairs):
    response = res_client.post(url("queue-create"), create_data(pairs, gold_share="0", gold_count="0",
                                                                limit="3"), **HTMX)
    queue = VerificationQueue.objects.get()
    assert response.status_code == 200 and response["HX-Redirect"] == url("queue-detail", queue.pk)
    assert queue.items.count() == 3 and queue.selection["limit"] == 3


def test_create_with_listed_gold_pairs_and_their_answers(res_client, pairs):
    data = create_data(pairs, gold_count="0", gold_pairs=f"{pairs[0].pk} verified\n{pairs[1].pk} rejected\n",
                       quorum="3")
    assert res_client.post(url("queue-create"), data).status_code == 302
    queue = VerificationQueue.objects.get()
    assert queue.quorum == 3
    assert dict(queue.items.filter(is_gold=True).values_list("pair_id", "gold_verified")) == {
        pairs[0].pk: True, pairs[1].pk: False}


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"name": ""}, "name", "This field is required."),
    ({"overlap": "0"}, "overlap", "Ensure this value is greater than or equal to 1."),
    ({"quorum": "4"}, "quorum", "Quorum must be between 1 and the overlap (3)."),
    ({"lease_minutes": "0"}, "lease_minutes", "Ensure this value is greater than or equal to 1."),
    ({"gold_share": "0.8"}, "gold_share", "Ensure this value is less than or equal to 0.5."),
    ({"gold_count": "10"}, "gold_count", "Only 6 of the selected pairs have a known ground truth"),
    ({"gold_count": "0"}, "gold_share", "A gold share needs gold pairs"),
    ({"gold_count": "0", "gold_pairs": "12 maybe"}, "gold_pairs", "line 1: write a pair id and verified or rejected"),
    ({"gold_count": "0", "gold_pairs": "999999 verified"}, "gold_pairs", "Unknown pairs: 999999."),
    ({"n_edits": "7"}, "n_edits", "Select a valid choice."),
    ({"generator": "999999"}, "generator", "Select a valid choice."),
    ({"limit": "0"}, "limit", "Ensure this value is greater than or equal to 1."),
])
def test_bad_input_answers_400_naming_the_field_and_stores_nothing(res_client, pairs, overrides, field, message):
    response = res_client.post(url("queue-create"), create_data(pairs, **overrides))
    assert response.status_code == 400
    form = response.context["form"]
    assert any(message in error for error in form.errors[field]), form.errors
    assert f'id="id_{field}-errors"' in html(response)
    assert not VerificationQueue.objects.exists() and not QueueItem.objects.exists()


def test_no_matching_pairs_and_a_taken_name_are_reported_and_nothing_is_stored(res_client, pairs):
    empty = GeneratorFactory(name="no pairs yet")
    response = res_client.post(url("queue-create"), create_data(pairs, generator=str(empty.pk), gold_share="0",
                                                                gold_count="0"), **HTMX)
    assert response.status_code == 400
    assert "selection: No pairs match this selection." in text(response)
    assert "<html" not in html(response) and 'id="queue-create-form"' in html(response)  # the form alone, for htmx
    assert not VerificationQueue.objects.exists() and not QueueItem.objects.exists()

    make_queue(pairs, name="Taken")
    response = res_client.post(url("queue-create"), create_data(pairs, name="Taken"))
    assert response.status_code == 400
    assert response.context["form"].errors["name"] == ["A queue named 'Taken' exists already."]
    assert VerificationQueue.objects.count() == 1


def test_pair_count_follows_the_selection(res_client, pairs):
    make_pairs(3, ground_truth=None, name="other-pairs")
    response = res_client.get(url("queue-pair-count"), {"generator": pairs[0].generator_id}, **HTMX)
    assert response.status_code == 200
    assert 'data-count="6"' in html(response) and 'data-known="6"' in html(response)
    response = res_client.get(url("queue-pair-count"), **HTMX)
    assert 'data-count="9"' in html(response) and 'data-known="6"' in html(response)
    response = res_client.get(url("queue-pair-count"), {"n_edits": "9"}, **HTMX)
    assert response.status_code == 400 and "Number of edits:" in text(response)


def test_list_shows_progress_and_answers(res_client, pairs):
    queue = make_queue(pairs, name="Progressing")
    people = annotators(3)
    answer_items(queue, people, [("winner", "winner", "winner"), ("loser", "loser", "both"),
                                 ("winner", "loser", "unsure")])
    response = res_client.get(url("queue-list"))
    row = re.search(rf'<tr id="queue-{queue.pk}".*?</tr>', html(response), re.S).group(0)
    assert '<span data-count="verified">1 verified</span>' in row
    assert '<span data-count="rejected">1 rejected</span>' in row
    assert '<span data-count="disputed">1 disputed</span>' in row
    assert '<td class="num" data-count="answers">9</td>' in row
    assert "3/6 decided" in row and 'style="width: 16.67%"' in row
    assert "Adjudicate (1)" in row


def test_list_page_makes_the_same_number_of_queries_for_more_queues(res_client):
    people = annotators(2)

    def add_queue(index):
        queue = make_queue(make_pairs(2, name=f"set-{index}"), name=f"Q{index}", overlap=2)
        queue.annotators.set(people)
        answer_items(queue, people, [("winner", "loser")])

    add_queue(0)
    res_client.get(url("queue-list"))  # warm caches (content types, sessions)
    with CaptureQueriesContext(connection) as one:
        assert res_client.get(url("queue-list")).status_code == 200
    for index in range(1, 5):
        add_queue(index)
    with CaptureQueriesContext(connection) as five:
        response = res_client.get(url("queue-list"))
    assert len(response.context["queues"]) == 5
    assert len(five) == len(one), [q["sql"] for q in five.captured_queries]


# --- A queue's page: edit, pause, items, flagged ----------------------------------------------------------


def edit_data(queue, **overrides) -> dict:
    data = {"name": queue.name, "instructions": queue.instructions, "status": queue.status,
            "priority": str(queue.priority), "lease_minutes": str(queue.lease_minutes),
            "gold_share": str(queue.gold_share), "overlap": str(queue.overlap), "quorum": str(queue.quorum)}
    data.update(overrides)
    return data


def test_edit_a_queue(res_client, pairs):
    queue = make_queue(pairs, name="Before")
    person = annotators(1)[0]
    response = res_client.post(url("queue-edit", queue.pk), edit_data(
        queue, name="After", instructions="New words", priority="9", lease_minutes="15", overlap="5", quorum="3",
        annotators=[str(person.pk)]))
    assert response.status_code == 302 and response["Location"] == url("queue-detail", queue.pk)
    queue.refresh_from_db()
    assert (queue.name, queue.instructions, queue.priority, queue.lease_minutes, queue.overlap, queue.quorum) == (
        "After", "New words", 9, 15, 5, 3)
    assert list(queue.annotators.all()) == [person]

    # No annotator selected: every annotator again.
    assert res_client.post(url("queue-edit", queue.pk), edit_data(queue), **HTMX)["HX-Redirect"] == url(
        "queue-detail", queue.pk)
    assert not queue.annotators.exists()


def test_bad_edits_answer_400_and_change_nothing(res_client, pairs):
    queue = make_queue(pairs, name="Stay")
    make_queue(make_pairs(2, name="other"), name="Other")
    for overrides, field, message in [
        ({"lease_minutes": "0"}, "lease_minutes", "Ensure this value is greater than or equal to 1."),
        ({"name": "Other"}, "name", "A queue named 'Other' exists already."),
        ({"gold_share": "0.3"}, "gold_share", "The queue has no gold pairs."),
        ({"quorum": "4"}, "quorum", "Quorum must be between 1 and the overlap (3)."),
        ({"status": "sleeping"}, "status", "Select a valid choice."),
    ]:
        response = res_client.post(url("queue-edit", queue.pk), edit_data(queue, **overrides), **HTMX)
        assert response.status_code == 400
        assert any(message in error for error in response.context["edit_form"].errors[field]), field
        assert 'id="queue-edit-form"' in html(response) and "<html" not in html(response)
    queue.refresh_from_db()
    assert (queue.name, queue.lease_minutes, queue.gold_share, queue.quorum) == ("Stay", 10, 0.0, 2)


def test_overlap_and_quorum_are_fixed_once_answered(res_client, pairs):
    queue = make_queue(pairs, name="Started")
    answer(queue, annotators(1)[0], "winner")
    page = html(res_client.get(url("queue-detail", queue.pk)))
    assert re.search(r'<input[^>]*name="overlap"[^>]*disabled', page)
    response = res_client.post(url("queue-edit", queue.pk), edit_data(queue, overlap="5", quorum="1",
                                                                       priority="2"))
    assert response.status_code == 302
    queue.refresh_from_db()
    assert (queue.overlap, queue.quorum, queue.priority) == (3, 2, 2)


def test_pause_resume_and_close(res_client, pairs):
    queue = make_queue(pairs, name="Q")
    page = html(res_client.get(url("queue-detail", queue.pk)))
    assert 'data-status="paused"' in page and 'data-status="closed"' in page
    for status in ("paused", "active", "closed"):
        response = res_client.post(url("queue-status", queue.pk), {"status": status})
        assert response.status_code == 302
        queue.refresh_from_db()
        assert queue.status == status
    assert res_client.post(url("queue-status", queue.pk), {"status": "gone"}).status_code == 400
    queue.refresh_from_db()
    assert queue.status == "closed"


def test_items_filter_by_status_and_kind(res_client, pairs):
    queue = make_queue(pairs, name="Q", gold_count=2)  # gold share 0: gold items are listed, never served
    people = annotators(3)
    disputed, verified = answer_items(queue, people, [("winner", "loser", "unsure"),
                                                      ("winner", "winner", "loser")])
    detail = url("queue-detail", queue.pk)
    page = res_client.get(detail)
    assert page.context["page"].paginator.count == 6

    response = res_client.get(detail, {"status": "disputed"}, **HTMX)
    assert response.status_code == 200 and "<html" not in html(response)
    rows = re.findall(r'<tr id="item-(\d+)" data-status="(\w+)"', html(response))
    assert rows == [(str(disputed.pk), "disputed")]
    assert f'href="{url("pair-detail", disputed.pair_id)}"' in html(response)
    assert f'href="{url("queue-adjudicate", queue.pk)}?item={disputed.pk}">Adjudicate' in html(response)

    response = res_client.get(detail, {"status": "verified"}, **HTMX)
    assert re.findall(r'<tr id="item-(\d+)"', html(response)) == [str(verified.pk)]
    assert "Overrule" in html(response)

    response = res_client.get(detail, {"kind": "gold"}, **HTMX)
    assert len(re.findall(r'data-gold="verified"', html(response))) == 2

    # The full page with a filter in the URL (a reload after hx-push-url) shows the filtered table.
    page = res_client.get(detail, {"status": "pending", "kind": "regular"})
    assert page.context["page"].paginator.count == 2 and page.context["item_form"]["status"].value() == "pending"

    response = res_client.get(detail, {"status": "lost"}, **HTMX)
    assert response.status_code == 400 and "Status:" in text(response)


def test_items_are_paginated(res_client):
    queue = make_queue(make_pairs(55, name="many"), name="Many", overlap=1)
    first = res_client.get(url("queue-detail", queue.pk))
    assert len(first.context["page"].object_list) == 50 and "Page 1 of 2" in text(first)
    second = res_client.get(url("queue-detail", queue.pk), {"page": "2"}, **HTMX)
    assert len(re.findall(r'<tr id="item-', html(second))) == 5


def test_restore_a_flagged_item(res_client, pairs):
    queue = make_queue(pairs, name="Q")
    person = annotators(1)[0]
    lease = item_claim(queue=queue, user=person)
    item_skip(user=person, assignment_id=lease.assignment_id, broken=True, reason="all grey")
    item = QueueItem.objects.get(pk=lease.item_id)
    assert (item.status, item.open) == (ItemStatus.FLAGGED, False)

    page = res_client.get(url("queue-detail", queue.pk))
    flagged = re.search(r'<section class="card" id="flagged">.*?</section>', html(page), re.S).group(0)
    assert f'id="flagged-{item.pk}"' in flagged and "broken image: all grey" in flagged and "a1" in flagged

    response = res_client.post(url("queue-item-restore", queue.pk, item.pk), **HTMX)
    assert response.status_code == 200 and response["HX-Trigger"] == "queue-changed"
    assert f"Item {item.pk} is back in the queue." in text(response) and "No flagged items." in text(response)
    item.refresh_from_db()
    assert (item.status, item.open) == (ItemStatus.PENDING, True)

    # Restoring it again: 400 with the reason, and nothing changes.
    response = res_client.post(url("queue-item-restore", queue.pk, item.pk), **HTMX)
    assert response.status_code == 400 and "Only flagged items can be restored." in text(response)
    response = res_client.post(url("queue-item-restore", queue.pk, item.pk))
    assert response.status_code == 400
    item.refresh_from_db()
    assert item.status == ItemStatus.PENDING


def test_restore_without_javascript_redirects_back(res_client, pairs):
    queue = make_queue(pairs, name="Q")
    person = annotators(1)[0]
    lease = item_claim(queue=queue, user=person)
    item_skip(user=person, assignment_id=lease.assignment_id, broken=True)
    response = res_client.post(url("queue-item-restore", queue.pk, lease.item_id))
    assert response.status_code == 302 and response["Location"] == url("queue-detail", queue.pk) + "#flagged"
    assert QueueItem.objects.get(pk=lease.item_id).status == ItemStatus.PENDING


def test_progress_block(res_client, pairs):
    queue = make_queue(pairs, name="Q")
    answer_items(queue, annotators(3), [("winner", "winner", "loser")])
    response = res_client.get(url("queue-progress", queue.pk), **HTMX)
    page = html(response)
    assert '<dd data-stat="verified">1</dd>' in page and '<dd data-stat="pending">5</dd>' in page
    assert "3 · 16.7 % of the 18 regular answers needed" in text(response)


# --- Adjudication --------------------------------------------------------------------------------------------


@pytest.fixture
def disputed_queue(pairs):
    queue = make_queue(pairs, name="Disputes")
    people = annotators(3)
    items = answer_items(queue, people, [("winner", "loser", "unsure"), ("unsure", "unsure", "winner"),
                                         ("winner", "winner", "winner")])
    assert [item.status for item in items] == ["disputed", "disputed", "verified"]
    return queue, items


def test_adjudication_page_shows_the_item_its_images_prompts_and_every_verdict(res_client, disputed_queue):
    queue, (first, second, decided) = disputed_queue
    response = res_client.get(url("queue-adjudicate", queue.pk))
    assert response.status_code == 200
    page = html(response)
    assert f'data-item="{first.pk}"' in page and 'data-remaining="2"' in page
    assert f'src="{url("pair-image", first.pair_id, "winner")}"' in page
    assert f'src="{url("pair-image", first.pair_id, "loser")}"' in page
    assert "Perfect prompt's image" in text(response) and "Perturbed prompt's image" in text(response)
    assert 'data-side="original"' in page and "mark class=\"edit\"" in page
    verdicts = re.findall(r'<tr data-annotator="(\w+)" data-answer="(\w+)" data-status="answered">', page)
    assert verdicts == [("a1", "winner"), ("a2", "loser"), ("a3", "unsure")]
    assert "1 × only the perfect prompt's image follows" in text(response)
    assert "4.0" in re.search(r'<table class="jobs verdicts".*?</table>', page, re.S).group(0)
    assert "quorum 2 of 3" in text(response)
    assert 'data-key="v"' in page and 'data-key="r"' in page
    listed = re.findall(r'\?item=(\d+)">item', page)
    assert listed == [str(first.pk), str(second.pk)]

    # Another disputed item, or a decided one to overrule, by its id.
    assert f'data-item="{second.pk}"' in html(res_client.get(url("queue-adjudicate", queue.pk),
                                                             {"item": second.pk}))
    assert f'data-item="{decided.pk}"' in html(res_client.get(url("queue-adjudicate", queue.pk),
                                                              {"item": decided.pk}))


def test_adjudicate_disputed_items_until_none_is_left(res_client, researcher, disputed_queue):
    queue, (first, second, _) = disputed_queue
    response = res_client.post(url("queue-adjudicate-item", queue.pk, first.pk),
                               {"status": "verified", "note": "the mug is left"}, **HTMX)
    assert response.status_code == 200 and "<html" not in html(response)
    assert f"Item {first.pk} (pair {first.pair_id}): verified." in text(response)
    assert f'data-item="{second.pk}"' in html(response) and 'data-remaining="1"' in html(response)
    first.refresh_from_db()
    assert first.status == ItemStatus.VERIFIED
    adjudication = Adjudication.objects.get(item=first)
    assert (adjudication.status, adjudication.note, adjudication.decided_by) == ("verified", "the mug is left",
                                                                                researcher)

    response = res_client.post(url("queue-adjudicate-item", queue.pk, second.pk), {"status": "rejected"}, **HTMX)
    assert 'id="adjudication-empty"' in html(response) and 'data-remaining="0"' in html(response)
    assert QueueItem.objects.get(pk=second.pk).status == ItemStatus.REJECTED
    assert 'id="adjudication-empty"' in html(res_client.get(url("queue-adjudicate", queue.pk)))


def test_adjudicate_without_javascript_and_bad_decisions(res_client, disputed_queue):
    queue, (first, _, _) = disputed_queue
    response = res_client.post(url("queue-adjudicate-item", queue.pk, first.pk), {"status": "maybe"})
    assert response.status_code == 400 and "Decision: Select a valid choice." in text(response)
    response = res_client.post(url("queue-adjudicate-item", queue.pk, first.pk), {"note": "no decision"}, **HTMX)
    assert response.status_code == 400 and "Choose Verified or Rejected." in text(response)
    assert not Adjudication.objects.exists()
    assert QueueItem.objects.get(pk=first.pk).status == ItemStatus.DISPUTED

    # A pending item cannot be adjudicated (404: it is not one of the items to decide).
    pending = queue.items.filter(status=ItemStatus.PENDING, is_gold=False).first()
    assert res_client.post(url("queue-adjudicate-item", queue.pk, pending.pk),
                           {"status": "verified"}).status_code == 404

    response = res_client.post(url("queue-adjudicate-item", queue.pk, first.pk), {"status": "rejected"})
    assert response.status_code == 302 and response["Location"] == url("queue-adjudicate", queue.pk)
    assert QueueItem.objects.get(pk=first.pk).status == ItemStatus.REJECTED


def test_adjudication_of_a_queue_without_disputes_shows_the_empty_state(res_client, pairs):
    queue = make_queue(pairs, name="Calm")
    response = res_client.get(url("queue-adjudicate", queue.pk))
    assert 'id="adjudication-empty"' in html(response) and "No disputed items" in text(response)


# --- Statistics --------------------------------------------------------------------------------------------


def test_statistics_page_shows_the_numbers_table_and_plot_data(res_client, disputed_queue):
    queue, _ = disputed_queue
    people = list(Assignment.objects.filter(queue=queue).values_list("annotator__username", flat=True).distinct())
    expected = stats_as_dict(queue_stats(queue))
    response = res_client.get(url("queue-stats", queue.pk))
    assert response.status_code == 200
    page = html(response)

    def tile(name):
        return re.search(rf'data-stat="{name}"><span class="value">([^<]*)</span>', page).group(1)

    assert tile("percent_agreement") == f"{100 * expected['percent_agreement']:.1f} %"
    assert tile("fleiss_kappa") == f"{expected['fleiss_kappa']:.3f}"
    assert tile("krippendorff_alpha") == f"{expected['krippendorff_alpha']:.3f}"
    assert tile("verdicts") == "9"

    for person in sorted(people):
        assert f'<tr data-annotator="{person}">' in page
    a1 = re.search(r'<tr data-annotator="a1">.*?</tr>', page, re.S).group(0)
    assert '<td class="num" data-col="answered">3</td>' in a1
    assert '<td class="num" data-col="median_seconds">4.0</td>' in a1
    assert 'data-col="gold_accuracy">– <small class="muted">of 0</small>' in a1  # no gold in this queue

    data = json.loads(unescape(re.search(r'<script id="stats-data" type="application/json">(.*?)</script>', page,
                                         re.S).group(1)))
    assert data["kappa"]["annotators"] == ["a1", "a2", "a3"]
    assert len(data["kappa"]["matrix"]) == 3 and data["kappa"]["matrix"][0][0] is None
    assert data["hourly"][-1]["total"] == 9
    assert sum(data["answers"].values()) == 9
    for plot in ("kappa", "annotator-rates", "annotator-seconds", "throughput", "answers"):
        assert f'data-plot="{plot}"' in page
    assert "vendor/chartjs-chart-matrix/chartjs-chart-matrix.min.js" in page


def test_statistics_page_of_a_queue_without_answers(res_client, pairs):
    queue = make_queue(pairs, name="Quiet")
    response = res_client.get(url("queue-stats", queue.pk))
    assert response.status_code == 200
    page = html(response)
    for name in ("percent_agreement", "fleiss_kappa", "krippendorff_alpha"):
        assert f'data-stat="{name}"><span class="value">–</span>' in page
    assert 'id="no-answers"' in page and "stats-data" not in page


def test_the_vendored_matrix_plugin_and_page_script_are_static_files():
    root = Path(settings.BASE_DIR) / "static"
    plugin = (root / "vendor/chartjs-chart-matrix/chartjs-chart-matrix.min.js").read_text()
    # Without the source map line: the manifest storage of collectstatic fails on a reference to a missing file.
    assert "chartjs-chart-matrix v3.1.0" in plugin[:200] and "sourceMappingURL" not in plugin
    assert (root / "vendor/chartjs-chart-matrix/LICENSE").read_text().startswith("MIT License")
    assert "chartjs-chart-matrix" in (root / "vendor/README.md").read_text()
    for name in ("vendor/chartjs-chart-matrix/chartjs-chart-matrix.min.js", "js/verification.js"):
        assert finders.find(name), name


# --- Helpers -----------------------------------------------------------------------------------------------------


def test_hourly_fills_the_hours_between_and_keeps_a_running_total():
    rows = hourly([{"hour": "2025-03-01T10:00:00+00:00", "answers": 4},
                   {"hour": "2025-03-01T13:00:00+00:00", "answers": 2}])
    assert rows == [
        {"hour": "2025-03-01 10:00", "answers": 4, "total": 4},
        {"hour": "2025-03-01 11:00", "answers": 0, "total": 4},
        {"hour": "2025-03-01 12:00", "answers": 0, "total": 4},
        {"hour": "2025-03-01 13:00", "answers": 2, "total": 6},
    ]
    assert hourly([]) == []


def test_segments_are_shares_of_all_items():
    bar = segments(8, {"verified": 4, "rejected": 2, "disputed": 1})
    assert [(s.status, s.count, s.percent) for s in bar] == [
        ("verified", 4, 50.0), ("rejected", 2, 25.0), ("disputed", 1, 12.5), ("flagged", 0, 0.0)]
    assert segments(0, {}) == []
