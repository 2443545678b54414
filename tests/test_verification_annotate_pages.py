"""The annotator's pages (views_annotate.py) through Django's test client: who reaches which queue, the work
page's item, the answer/skip/undo actions (one htmx request each: store, then the next item), the images in
the lease's left/right order, and what the annotator's HTML never says."""

import io
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from spatiallab.verification.models import Assignment, AssignmentStatus, ItemStatus, QueueItem, QueueStatus
from spatiallab.verification.services import leases_expire
from tests.factories import UserFactory
from tests.verification_data import make_pairs, make_queue

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
RED, BLUE = (255, 0, 0), (0, 0, 255)  # make_pairs: winner images red, loser images blue


@pytest.fixture
def queue():
    pairs = make_pairs(5, name="set-1")
    return make_queue(pairs, name="Spatial check", overlap=3,
                      instructions="Read the prompt, then look at both images before you decide.")


@pytest.fixture
def ann_client(client, annotator):
    client.force_login(annotator)
    return client


def work_url(queue):
    return reverse("annotate-queue", args=[queue.pk])


def action_url(queue, action):
    return reverse(f"annotate-{action}", args=[queue.pk])


def shown_assignment(response) -> int | None:
    match = re.search(rb'data-assignment="(\d+)"', response.content)
    return int(match.group(1)) if match else None


def lease_of(user, queue) -> Assignment:
    return Assignment.objects.get(annotator=user, queue=queue, status=AssignmentStatus.LEASED)


def served_colour(client, assignment_id, side):
    response = client.get(reverse("annotate-image", args=[assignment_id, side]))
    assert response.status_code == 200
    image = Image.open(io.BytesIO(b"".join(response.streaming_content))).convert("RGB")
    return image.getpixel((image.width // 2, image.height // 2))


def answer(client, queue, assignment_id, choice="left", *, seconds="3.5", key=None):
    data = {"assignment_id": assignment_id, "choice": choice, "seconds": seconds}
    if key:
        data["client_key"] = key
    return client.post(action_url(queue, "answer"), data, **HTMX)


# --- Access ----------------------------------------------------------------------------------------------------


def test_annotator_without_access_to_a_queue_gets_404_everywhere(client, queue):
    outsider_queue = make_queue(make_pairs(2, name="set-2"), name="Members only")
    member = UserFactory(role="annotator")
    outsider_queue.annotators.add(member)
    other = UserFactory(role="annotator")
    client.force_login(other)
    assert client.get(work_url(outsider_queue)).status_code == 404
    for action in ("answer", "skip", "undo"):
        assert client.post(action_url(outsider_queue, action), {"assignment_id": 1, "choice": "left"},
                           **HTMX).status_code == 404
    assert not Assignment.objects.filter(queue=outsider_queue).exists()
    assert client.get(work_url(queue)).status_code == 200  # an open queue (no member list) is fine

    client.force_login(member)
    assert client.get(work_url(outsider_queue)).status_code == 200


def test_paused_or_closed_queues_are_404(ann_client, queue):
    for status in (QueueStatus.PAUSED, QueueStatus.CLOSED):
        queue.status = status
        queue.save(update_fields=["status"])
        assert ann_client.get(work_url(queue)).status_code == 404
        assert ann_client.get(reverse("annotate")).content.count(b"queue-entry") == 0


def test_logged_out_and_role_less_users_are_kept_out(client, queue):
    response = client.get(work_url(queue))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    client.force_login(UserFactory())  # no role
    assert client.get(reverse("annotate")).status_code == 403
    assert client.get(work_url(queue)).status_code == 403


def test_researcher_pages_stay_closed_to_annotators(ann_client, queue):
    for url in (reverse("dashboard"), reverse("queue-list"), reverse("pair-gallery")):
        assert ann_client.get(url).status_code == 403, url


def test_images_of_someone_elses_assignment_are_404(client, queue, annotator):
    other = UserFactory(role="annotator")
    client.force_login(other)
    client.get(work_url(queue))
    theirs = lease_of(other, queue)
    client.force_login(annotator)
    for side in ("left", "right", "left-thumb"):
        assert client.get(reverse("annotate-image", args=[theirs.pk, side])).status_code == 404
    client.force_login(other)
    assert client.get(reverse("annotate-image", args=[theirs.pk, "left"])).status_code == 200
    assert client.get(reverse("annotate-image", args=[theirs.pk, "winner"])).status_code == 404


# --- The queue list ------------------------------------------------------------------------------------------


def test_list_shows_open_queues_by_priority_with_own_counts_only(client, annotator, queue):
    low = make_queue(make_pairs(3, name="set-3"), name="Low priority", priority=-1)
    high = make_queue(make_pairs(2, name="set-4"), name="High priority", priority=5)
    closed = make_queue(make_pairs(2, name="set-5"), name="Closed one")
    closed.status = QueueStatus.CLOSED
    closed.save(update_fields=["status"])
    members_only = make_queue(make_pairs(2, name="set-6"), name="Members only")
    members_only.annotators.add(UserFactory(role="annotator"))

    # Someone else answers in the queue: their answers never show up in this annotator's counts.
    other = UserFactory(role="annotator")
    client.force_login(other)
    client.get(work_url(queue))
    answer(client, queue, lease_of(other, queue).pk)

    client.force_login(annotator)
    client.get(work_url(queue))
    answer(client, queue, lease_of(annotator, queue).pk)
    html = client.get(reverse("annotate")).content.decode()
    names = re.findall(r"<h2>(.*?)</h2>", html)
    assert names == ["High priority", "Spatial check", "Low priority"]
    entry = re.search(rf'id="queue-{queue.pk}".*?</li>', html, re.S).group(0)
    assert re.search(r'data-count="my_answered">1<', entry)
    assert re.search(r'data-count="open_items">\d+<', entry)
    assert "Continue" in entry and "Read the prompt" in entry
    assert "Start" in re.search(rf'id="queue-{low.pk}".*?</li>', html, re.S).group(0)
    assert reverse("annotate-queue", args=[high.pk]) in html
    assert "Closed one" not in html and "Members only" not in html


def test_list_has_an_empty_state(ann_client):
    response = ann_client.get(reverse("annotate"))
    assert response.status_code == 200
    assert b'id="queue-empty"' in response.content and b"queue-entry" not in response.content


# --- The work page -----------------------------------------------------------------------------------------------


def test_get_twice_returns_the_same_item(ann_client, annotator, queue):
    first = ann_client.get(work_url(queue))
    second = ann_client.get(work_url(queue))
    assert shown_assignment(first) is not None and shown_assignment(first) == shown_assignment(second)
    assert Assignment.objects.filter(annotator=annotator, queue=queue).count() == 1
    html = first.content.decode()
    assert "Read the prompt, then look at both images" in html  # the instructions
    for key in "12345":
        assert f'data-key="{key}"' in html
    assert 'data-key="s"' in html and 'data-key="b"' in html and 'data-key="u"' in html
    assert re.search(r'id="undo-button"[^>]*disabled', html, re.S)  # nothing answered yet
    assert 'rel="preload" as="image"' in html
    assert 'class="rel edited"' in html or "rel edited" in html  # the edited relation is marked


def test_answer_stores_the_verdict_and_shows_the_next_item(ann_client, annotator, queue):
    first = shown_assignment(ann_client.get(work_url(queue)))
    response = answer(ann_client, queue, first, "right", seconds="4.25", key="k-1")
    assert response.status_code == 200
    stored = Assignment.objects.get(pk=first)
    assert (stored.status, stored.choice, stored.seconds, stored.client_key) == (
        AssignmentStatus.ANSWERED, "right", 4.25, "k-1")
    assert stored.answer == ("loser" if stored.winner_left else "winner")
    nxt = shown_assignment(response)
    assert nxt is not None and nxt != first and nxt == lease_of(annotator, queue).pk
    html = response.content.decode()
    assert "<html" not in html  # a fragment for #annotate-item, not a page
    assert re.search(r'data-count="answered">1<', html)
    assert "Answer saved." in html
    assert re.search(r'id="undo-button"[^>]*data-undo-left="30"', html, re.S)


def test_images_are_served_in_the_leases_left_right_order(ann_client, annotator, queue):
    for _ in range(5):
        assignment_id = shown_assignment(ann_client.get(work_url(queue)))
        lease = Assignment.objects.get(pk=assignment_id)
        left, right = served_colour(ann_client, assignment_id, "left"), served_colour(ann_client, assignment_id,
                                                                                       "right")
        assert (left, right) == ((RED, BLUE) if lease.winner_left else (BLUE, RED))
        choice = "left" if lease.winner_left else "right"  # the red image: the perfect prompt's
        answer(ann_client, queue, assignment_id, choice)
        assert Assignment.objects.get(pk=assignment_id).answer == "winner"
    assert Assignment.objects.filter(annotator=annotator, status=AssignmentStatus.ANSWERED).count() == 5


def test_a_retried_answer_with_the_same_key_stores_one_verdict(ann_client, annotator, queue):
    first = shown_assignment(ann_client.get(work_url(queue)))
    one = answer(ann_client, queue, first, "both", key="retry-key")
    two = answer(ann_client, queue, first, "both", key="retry-key")
    assert one.status_code == two.status_code == 200
    assert shown_assignment(one) == shown_assignment(two)  # the retry sees the same next item
    assert b"stored once" in two.content
    assert Assignment.objects.filter(annotator=annotator, status=AssignmentStatus.ANSWERED).count() == 1
    assert QueueItem.objects.get(assignments__pk=first).done == 1

    # Without the key the second post is refused (409) with a message, and the page still shows the next item.
    nxt = shown_assignment(two)
    answer(ann_client, queue, nxt, "left")
    again = answer(ann_client, queue, nxt, "left")
    assert again.status_code == 409 and b"already answered" in again.content
    assert shown_assignment(again) not in (None, nxt)


def test_bad_input_is_a_400_naming_the_field(ann_client, annotator, queue):
    first = shown_assignment(ann_client.get(work_url(queue)))
    for data, field in [({"assignment_id": first, "choice": "winner"}, "choice"),
                        ({"assignment_id": first, "choice": "left", "seconds": "-2"}, "seconds"),
                        ({"assignment_id": "x", "choice": "left"}, "assignment_id"),
                        ({"assignment_id": first, "choice": "left", "client_key": "k" * 65}, "client_key")]:
        response = ann_client.post(action_url(queue, "answer"), data, **HTMX)
        assert response.status_code == 400, data
        message = re.search(r'id="annotate-message"[^>]*>(.*?)</p>', response.content.decode(), re.S).group(1)
        assert message.startswith(f"{field}:"), message
        assert shown_assignment(response) == first  # still the same item
    assert lease_of(annotator, queue).pk == first
    assert not Assignment.objects.filter(annotator=annotator, status=AssignmentStatus.ANSWERED).exists()


def test_an_expired_lease_gets_a_message_and_the_next_item(ann_client, annotator, queue):
    first = shown_assignment(ann_client.get(work_url(queue)))
    Assignment.objects.filter(pk=first).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert leases_expire(queue_id=queue.pk) == 1
    response = answer(ann_client, queue, first, "left")
    assert response.status_code == 410
    assert b"expired" in response.content
    assert shown_assignment(response) is not None
    assert not Assignment.objects.filter(annotator=annotator, status=AssignmentStatus.ANSWERED).exists()


def test_skip_with_a_reason(ann_client, annotator, queue):
    first = shown_assignment(ann_client.get(work_url(queue)))
    response = ann_client.post(action_url(queue, "skip"), {"assignment_id": first, "reason": "  too dark "}, **HTMX)
    assert response.status_code == 200
    skipped = Assignment.objects.get(pk=first)
    assert (skipped.status, skipped.skip_reason) == (AssignmentStatus.SKIPPED, "too dark")
    assert QueueItem.objects.get(pk=skipped.item_id).status == ItemStatus.PENDING
    assert shown_assignment(response) not in (None, first)
    html = response.content.decode()
    assert re.search(r'data-count="skipped">1<', html) and "Skipped." in html
    assert re.search(r'id="undo-button"[^>]*disabled', html, re.S)  # a skip is not undone


def test_broken_flag_takes_the_item_out_of_the_queue(ann_client, annotator, queue):
    first = shown_assignment(ann_client.get(work_url(queue)))
    response = ann_client.post(action_url(queue, "skip"),
                               {"assignment_id": first, "reason": "right one is grey", "broken": "1"}, **HTMX)
    assert response.status_code == 200 and b"Flagged as broken" in response.content
    skipped = Assignment.objects.get(pk=first)
    assert skipped.status == AssignmentStatus.SKIPPED and skipped.skip_reason == "broken image: right one is grey"
    item = QueueItem.objects.get(pk=skipped.item_id)
    assert (item.status, item.flags, item.open) == (ItemStatus.FLAGGED, 1, False)


def test_undo_within_the_window_gives_the_item_back(ann_client, annotator, queue, settings):
    settings.VERIFICATION_UNDO_SECONDS = 20
    first = shown_assignment(ann_client.get(work_url(queue)))
    after = answer(ann_client, queue, first, "neither")
    assert re.search(r'data-undo-left="20"', after.content.decode())
    second = shown_assignment(after)
    # A reload right after the answer still offers undo.
    assert re.search(r'data-undo-left="(1\d|20)"', ann_client.get(work_url(queue)).content.decode())

    response = ann_client.post(action_url(queue, "undo"), **HTMX)
    assert response.status_code == 200 and b"Answer taken back" in response.content
    assert shown_assignment(response) == first
    back = Assignment.objects.get(pk=first)
    assert (back.status, back.choice, back.seconds) == (AssignmentStatus.LEASED, "", None)
    assert not Assignment.objects.filter(pk=second).exists()  # the next item went back to the queue
    assert re.search(r'data-count="answered">0<', response.content.decode())

    again = answer(ann_client, queue, first, "both")
    assert Assignment.objects.get(pk=first).choice == "both" and again.status_code == 200


def test_undo_is_refused_after_the_window(ann_client, annotator, queue, settings):
    settings.VERIFICATION_UNDO_SECONDS = 2
    first = shown_assignment(ann_client.get(work_url(queue)))
    after = answer(ann_client, queue, first, "left")
    assert re.search(r'data-undo-left="2"', after.content.decode())
    Assignment.objects.filter(pk=first).update(answered_at=F("answered_at") - timedelta(seconds=5))
    page = ann_client.get(work_url(queue)).content.decode()
    assert re.search(r'id="undo-button"[^>]*data-undo-left="0"[^>]*disabled', page, re.S)

    response = ann_client.post(action_url(queue, "undo"), **HTMX)
    assert response.status_code == 409
    assert b"Nothing to undo" in response.content
    assert shown_assignment(response) == shown_assignment(after)  # still the current item
    assert Assignment.objects.get(pk=first).status == AssignmentStatus.ANSWERED


def test_the_last_item_leads_to_the_done_state(ann_client, annotator):
    queue = make_queue(make_pairs(1, name="set-7"), name="Tiny")
    first = shown_assignment(ann_client.get(work_url(queue)))
    response = answer(ann_client, queue, first, "unsure")
    assert shown_assignment(response) is None
    assert b'id="annotate-done"' in response.content and b"Nothing left for you in this queue" in response.content
    # Undo still works from the done state.
    assert not re.search(r'id="undo-button"[^>]*disabled', response.content.decode(), re.S)
    assert b"Nothing left for you" in ann_client.get(work_url(queue)).content


def test_plain_form_posts_without_javascript_go_back_to_the_page(ann_client, annotator, queue):
    first = shown_assignment(ann_client.get(work_url(queue)))
    response = ann_client.post(action_url(queue, "answer"), {"assignment_id": first, "choice": "left"})
    assert response.status_code == 302 and response["Location"] == work_url(queue)
    assert Assignment.objects.get(pk=first).status == AssignmentStatus.ANSWERED
    bad = ann_client.post(action_url(queue, "answer"), {"assignment_id": first, "choice": "sideways"})
    assert bad.status_code == 400 and b"<html" in bad.content and b"choice:" in bad.content


# --- What the annotator never sees ----------------------------------------------------------------------------


def test_annotator_html_never_says_winner_loser_or_the_pair(ann_client, annotator, queue):
    pages = [ann_client.get(reverse("annotate")), ann_client.get(work_url(queue))]
    first = shown_assignment(pages[-1])
    pages.append(answer(ann_client, queue, first, "left", key="abc"))
    pages.append(ann_client.post(action_url(queue, "skip"), {"assignment_id": shown_assignment(pages[-1])}, **HTMX))
    pages.append(ann_client.post(action_url(queue, "undo"), **HTMX))
    pair_ids = set(QueueItem.objects.filter(queue=queue).values_list("pair_id", flat=True))
    for response in pages:
        html = response.content.decode().lower()
        assert "winner" not in html and "loser" not in html and "perturbed" not in html
        assert "data-pair" not in html and "/pairs/" not in html and "pair_id" not in html
        for pk in pair_ids:
            assert f"pair {pk}" not in html and f"pair-{pk}" not in html
        images = re.findall(r'<img[^>]*src="([^"]+)"', html)
        for src in images:
            assert re.fullmatch(r"/annotate/assignments/\d+/image/(left|right)/", src), src


# --- Cost per action ---------------------------------------------------------------------------------------------


def _answer_queries(client, user, queue) -> int:
    client.get(work_url(queue))
    lease = lease_of(user, queue)
    with CaptureQueriesContext(connection) as queries:
        response = answer(client, queue, lease.pk, "left", key=f"q-{lease.pk}")
    assert response.status_code == 200 and shown_assignment(response) is not None
    return len(queries)


def test_an_answer_costs_a_constant_number_of_queries(client):
    small = make_queue(make_pairs(3, name="set-8"), name="Small")
    large = make_queue(make_pairs(24, seeds_per_prompt=2, name="set-9"), name="Large")
    user = UserFactory(role="annotator")
    client.force_login(user)
    counts = [_answer_queries(client, user, small), _answer_queries(client, user, large),
              _answer_queries(client, user, large)]
    # An answer with the next item costs a handful of statements, whatever the queue's size or progress.
    assert counts[0] == counts[1] == counts[2], counts
    assert counts[0] <= 20, counts
