"""The annotator's work page in real Chromium (Playwright) against pytest-django's live server.

The demo annotator works through a queue with the keyboard only: answers, a skip with a typed reason (digits
typed into the field answer nothing), a cancelled skip, a key with a modifier (ignored), an undo, and a
reload in the middle of an item (the same item comes back). Every next item arrives through htmx without a
page load, and its images are already decoded when it is swapped in. A response lost on the way back is
retried with the same client key and stores one verdict. The verdicts are then read from the database.
"""

import pytest

from spatiallab.accounts.roles import Role
from spatiallab.verification.models import Assignment, AssignmentStatus
from tests.browser import CREDENTIALS, log_in
from tests.verification_data import make_pairs, make_queue

# Transactional: the live server thread sees only committed rows.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Marks the page (a full load would lose the marker), collects htmx errors, and records, for every image put
# into the item container, whether it was already decoded when it arrived (a blank flash otherwise).
WATCH_JS = """
() => {
  window.__noReload = true;
  window.__htmxErrors = [];
  window.__lateImages = [];
  window.__swappedImages = 0;
  for (const name of ["htmx:sendError", "htmx:swapError", "htmx:targetError", "htmx:responseError"]) {
    document.body.addEventListener(name, () => window.__htmxErrors.push(name));
  }
  new MutationObserver((mutations) => {
    for (const mutation of mutations) {
      for (const node of mutation.addedNodes) {
        if (!node.querySelectorAll) continue;
        for (const img of node.querySelectorAll("img")) {
          window.__swappedImages += 1;
          if (!(img.complete && img.naturalWidth > 0)) window.__lateImages.push(img.getAttribute("src"));
        }
      }
    }
  }).observe(document.getElementById("annotate-item"), { childList: true, subtree: true });
}
"""
CURRENT_JS = "() => document.querySelector('#annotate-item [data-annotate-fragment]').dataset.assignment || null"
READY_JS = "() => !!document.querySelector('#annotate-item [data-annotate-fragment][data-ready]')"
NEXT_ITEM_JS = """
(previous) => {
  const frame = document.querySelector('#annotate-item [data-annotate-fragment]');
  if (!frame || (frame.dataset.assignment || null) === previous) return false;
  return !frame.dataset.assignment || frame.hasAttribute('data-ready');
}
"""


def current(page) -> str | None:
    return page.evaluate(CURRENT_JS)


def press_and_wait(page, key: str) -> str | None:
    """Presses a key that moves on to another item and waits until that item is on screen."""
    before = current(page)
    page.wait_for_function(READY_JS)
    page.keyboard.press(key)
    page.wait_for_function(NEXT_ITEM_JS, arg=before)
    return current(page)


def assert_no_reload(page):
    assert page.evaluate("window.__noReload") is True
    assert page.evaluate("window.__htmxErrors") == []
    assert page.evaluate("window.__lateImages") == [], "an item was shown before its images were decoded"


def test_annotator_works_through_a_queue_with_the_keyboard(page, live_server, demo_accounts):
    pairs = make_pairs(8, name="browser-set")
    queue = make_queue(pairs, name="Keyboard queue", overlap=1,
                       instructions="Decide which image follows the prompt, using the keys.")
    log_in(page, live_server, Role.ANNOTATOR)
    assert page.url == f"{live_server.url}/annotate/"
    entry = page.locator(f"#queue-{queue.pk}")
    assert "Keyboard queue" in entry.inner_text() and "Start" in entry.inner_text()

    page.goto(f"{live_server.url}/annotate/{queue.pk}/")
    assert "Decide which image follows the prompt" in page.locator("#annotate-instructions").inner_text()
    page.wait_for_function(READY_JS)
    page.evaluate(WATCH_JS)
    assert page.locator("#annotate-prompt mark.edited").count() >= 1
    assert page.locator("#undo-button").is_disabled()

    items = [current(page)]
    # Answers: 1 (left), 2 (right), 3 (both).
    for key in "123":
        items.append(press_and_wait(page, key))
    assert len(set(items)) == 4
    assert page.locator("#annotate-message").inner_text() == "Answer saved."
    assert page.locator("[data-count=answered]").inner_text() == "3"
    assert page.locator("#undo-button").is_enabled()

    # A key with a modifier does nothing.
    page.keyboard.press("Alt+3")
    page.wait_for_timeout(300)
    assert current(page) == items[-1]

    # Skip, then think better of it: Escape closes the reason field and keeps the item.
    page.keyboard.press("s")
    reason = page.locator("#skip-panel input[name=reason]")
    assert reason.is_visible() and page.evaluate("document.activeElement.name") == "reason"
    page.keyboard.type("never mind")
    page.keyboard.press("Escape")
    assert not reason.is_visible()
    assert current(page) == items[-1]

    # Skip with a reason: the digits typed into the field answer nothing; Enter confirms.
    skipped = items[-1]
    page.keyboard.press("s")
    assert reason.input_value() == ""
    page.keyboard.type("too dark 2")
    before = current(page)
    page.keyboard.press("Enter")
    page.wait_for_function(NEXT_ITEM_JS, arg=before)
    items.append(current(page))
    assert page.locator("#annotate-message").inner_text() == "Skipped."
    assert page.locator("[data-count=skipped]").inner_text() == "1"
    assert page.locator("#undo-button").is_disabled()  # a skip is not undone

    # Answer 4 (neither), then undo: that item comes back, then answer it again with 5 (can't tell).
    undone = items[-1]
    items.append(press_and_wait(page, "4"))
    assert page.locator("#undo-button").is_enabled()
    assert press_and_wait(page, "u") == undone
    assert page.locator("#annotate-message").inner_text().startswith("Answer taken back")
    assert page.locator("[data-count=answered]").inner_text() == "3"
    after_undo = press_and_wait(page, "5")
    assert after_undo not in (None, undone)
    assert_no_reload(page)
    assert page.evaluate("window.__swappedImages") >= 2 * 6

    # A reload in the middle of an item brings back the same item.
    mid_item = current(page)
    page.reload()
    page.wait_for_function(READY_JS)
    assert current(page) == mid_item
    assert page.evaluate("window.__noReload === undefined")  # it was a real reload
    page.evaluate(WATCH_JS)
    last = press_and_wait(page, "1")
    assert last not in (None, mid_item)
    assert page.locator("[data-count=answered]").inner_text() == "5"
    assert_no_reload(page)
    assert page.errors == []

    username = CREDENTIALS[Role.ANNOTATOR][0]
    mine = Assignment.objects.filter(queue=queue, annotator__username=username)
    answered = list(mine.filter(status=AssignmentStatus.ANSWERED).order_by("answered_at", "pk"))
    assert [a.choice for a in answered] == ["left", "right", "both", "unsure", "left"]
    assert [str(a.pk) for a in answered] == [items[0], items[1], items[2], undone, mid_item]
    assert all(a.seconds is not None and 0 < a.seconds < 120 for a in answered), [a.seconds for a in answered]
    keys = [a.client_key for a in answered]
    assert all(keys) and len(set(keys)) == len(keys)
    assert mine.filter(status=AssignmentStatus.SKIPPED).get().pk == int(skipped)
    assert mine.get(pk=skipped).skip_reason == "too dark 2"
    assert mine.filter(status=AssignmentStatus.LEASED).get().pk == int(last)  # the item on screen
    assert mine.count() == len(set(mine.values_list("item_id", flat=True))) == 7  # one row per item


def test_a_lost_response_is_retried_once_and_the_done_state_can_be_undone(page, live_server, demo_accounts):
    queue = make_queue(make_pairs(2, name="browser-small"), name="Short queue", overlap=1)
    log_in(page, live_server, Role.ANNOTATOR)
    page.goto(f"{live_server.url}/annotate/{queue.pk}/")
    page.wait_for_function(READY_JS)
    page.evaluate(WATCH_JS)
    first = current(page)

    # The first answer reaches the server but its response is lost: the annotator presses the key again, the
    # page sends the same client key, and the verdict is stored once.
    dropped = []

    def lose_first_response(route):
        if dropped:
            route.continue_()
            return
        dropped.append(route.fetch().status)
        route.abort()

    page.route("**/answer/", lose_first_response)
    page.keyboard.press("2")
    page.wait_for_function("() => document.getElementById('annotate-message').textContent.includes('retry')")
    assert dropped == [200] and current(page) == first
    assert page.evaluate("window.__htmxErrors") == ["htmx:sendError"]
    page.evaluate("window.__htmxErrors = []")
    # htmx and Chromium log the lost response on the console; nothing else may be there.
    lost = ("htmx:sendError", "htmx:afterRequest", "net::ERR_FAILED")
    assert page.errors and all(any(word in error for word in lost) for error in page.errors), page.errors
    page.errors.clear()
    second = press_and_wait(page, "2")
    assert page.locator("#annotate-message").inner_text() == "Answer saved (sent twice, stored once)."
    page.unroute("**/answer/")
    assert press_and_wait(page, "3") is None
    assert page.locator("#annotate-done").inner_text().startswith("Nothing left for you in this queue")
    page.keyboard.press("1")  # no options in the done state: nothing happens
    page.wait_for_timeout(200)
    assert current(page) is None
    assert press_and_wait(page, "u") == second
    assert_no_reload(page)
    assert page.errors == []
    username = CREDENTIALS[Role.ANNOTATOR][0]
    mine = Assignment.objects.filter(queue=queue, annotator__username=username)
    assert list(mine.filter(status=AssignmentStatus.ANSWERED).values_list("pk", "choice")) == [(int(first), "right")]
    assert mine.get(pk=second).status == AssignmentStatus.LEASED
