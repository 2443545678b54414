"""The researcher pages for dataset versions: the list with the create form and its live count of matching
verified pairs, and a version's page (build progress while it builds; when frozen its hash, card plots, queue
agreement, diff against the parent, README and downloads, streamed or made by an export job).

Bad input answers 400 naming the field and stores nothing; annotators get 403 everywhere and change nothing;
anonymous users are sent to the login page; the list keeps a constant number of queries.
"""

import hashlib
import json
import re
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from spatiallab.datasets.models import DatasetExport, DatasetVersion, ExportStatus, VersionStatus
from spatiallab.datasets.services import build_fail, version_create
from spatiallab.jobs.models import Job, JobStatus
from spatiallab.verification.models import Answer, ItemStatus, QueueItem
from spatiallab.verification.services import item_adjudicate
from tests.dataset_data import build_version, run_job_inline, verified_pairs
from tests.factories import GeneratorFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
W, L, N, U = Answer.WINNER, Answer.LOSER, Answer.NEITHER, Answer.UNSURE


def url(name, *args):
    return reverse(name, args=args)


def html(response) -> str:
    return response.content.decode()


def text(response) -> str:
    """The page's text without tags, whitespace squeezed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html(response))))


def json_script(response, element_id: str):
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html(response), re.S)
    assert match, f"no json_script {element_id}"
    return json.loads(match.group(1))


def _mixed(pairs):
    """pairs[8]: 2 of 3 say winner; [9]: rejected; [10]: disputed; every other pair: all three say winner."""
    return {pairs[8].pk: [W, W, N], pairs[9].pk: [N, N, L], pairs[10].pk: [W, N, U]}


@pytest.fixture
def setup(db):
    return verified_pairs(12, answers_for=_mixed, name="pages")


@pytest.fixture
def res_client(client, researcher):
    client.force_login(researcher)
    return client


def create_data(queue, **overrides) -> dict:
    data = {"name": "kitchen-v1", "description": "First cut.", "parent": "", "queues": [str(queue.pk)],
            "generators": [], "rules": [], "n_edits": "", "min_agreement": "0", "include_adjudicated": "on",
            "ratios_train": "0.8", "ratios_validation": "0.1", "ratios_test": "0.1"}
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


# --- Access ------------------------------------------------------------------------------------------------------


def test_annotators_get_403_anonymous_users_go_to_login_and_nothing_changes(client, annotator, setup):
    pairs, queue = setup
    version = build_version("v1", criteria={"queues": [queue.pk]})
    gets = [url("dataset-version-list"), url("dataset-version-table"), url("dataset-version-count"),
            url("dataset-version-detail", version.pk), url("dataset-version-build", version.pk),
            url("dataset-version-download-cell", version.pk) + "?format=jsonl&split="]
    posts = [(url("dataset-version-create"), create_data(queue, name="sneaky")),
             (url("dataset-version-export", version.pk), {"format": "parquet", "split": ""})]
    for address in gets:
        response = client.get(address)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), address
    for address, data in posts:
        response = client.post(address, data)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), address
    client.force_login(annotator)
    for address in gets:
        assert client.get(address).status_code == 403, address
    for address, data in posts:
        assert client.post(address, data).status_code == 403, address
    assert list(DatasetVersion.objects.values_list("name", flat=True)) == ["v1"]
    assert not DatasetExport.objects.exists()
    # The nav offers the page to the research team only.
    assert "Datasets" not in html(client.get("/"))


# --- The list ------------------------------------------------------------------------------------------------


def test_the_list_shows_status_entries_hash_parent_and_creator(res_client, researcher, setup):
    pairs, queue = setup
    parent = build_version("parent", criteria={"queues": [queue.pk], "min_agreement": 0.9}, created_by=researcher)
    child = build_version("child", criteria={"queues": [queue.pk]}, parent=parent)
    building = version_create(name="building", criteria={"queues": [queue.pk]})
    failed = version_create(name="broken", criteria={"queues": [queue.pk]})
    build_fail(version_id=failed.pk, error="boom")

    response = res_client.get(url("dataset-version-list"))
    assert response.status_code == 200
    page = html(response)
    assert '<a href="/dashboard/datasets/" data-nav="datasets">Datasets</a>' in page
    rows = re.findall(r'<tr id="version-(\d+)" data-status="(\w+)">', page)
    # Newest first.
    assert rows == [(str(failed.pk), "failed"), (str(building.pk), "building"), (str(child.pk), "frozen"),
                    (str(parent.pk), "frozen")]
    row = re.search(rf'<tr id="version-{child.pk}".*?</tr>', page, re.S).group(0)
    assert f'href="{url("dataset-version-detail", child.pk)}">child</a>' in row
    assert f'<td class="num" data-col="entries">{child.entry_count}</td>' in row
    assert f'<code title="{child.content_hash}">{child.content_hash[:12]}</code>' in row
    assert f'<a href="{url("dataset-version-detail", parent.pk)}">parent</a>' in row
    assert 'data-version-status="frozen">Frozen</span>' in row
    assert "by res" in re.search(rf'<tr id="version-{parent.pk}".*?</tr>', page, re.S).group(0)
    building_row = re.search(rf'<tr id="version-{building.pk}".*?</tr>', page, re.S).group(0)
    assert 'data-version-status="building">Building</span>' in building_row and 'class="progress"' in building_row
    assert 'data-version-status="failed">Failed</span>' in page
    # A building version with a live job: the table polls itself; without one it does not.
    assert 'hx-get="/dashboard/datasets/table/" hx-trigger="every 3s"' in page
    table = res_client.get(url("dataset-version-table"), **HTMX)
    assert html(table).startswith('<div id="versions-table" hx-get=')
    Job.objects.filter(pk=building.build_job_id).update(status=JobStatus.CANCELLED)
    assert 'hx-trigger="every' not in html(res_client.get(url("dataset-version-table"), **HTMX))


def test_the_list_keeps_a_constant_number_of_queries(res_client, researcher, setup):
    pairs, queue = setup

    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert res_client.get(url("dataset-version-list")).status_code == 200
        return len(queries)

    parent = build_version("q1", criteria={"queues": [queue.pk]}, created_by=researcher)
    few = count_queries()
    build_version("q2", criteria={"queues": [queue.pk]}, parent=parent, created_by=researcher)
    version_create(name="q3", criteria={"queues": [queue.pk]}, parent=parent, created_by=researcher)
    version_create(name="q4", criteria={"queues": [queue.pk]})
    assert count_queries() == few


# --- Creating ----------------------------------------------------------------------------------------------------


def test_the_form_offers_the_criteria_and_default_ratios(res_client, setup):
    pairs, queue = setup
    page = html(res_client.get(url("dataset-version-list")))
    form = re.search(r'<form id="version-create-form".*?</form>', page, re.S).group(0)
    for name in ("name", "description", "parent", "queues", "generators", "rules", "n_edits", "min_agreement",
                 "include_adjudicated", "ratios_train", "ratios_validation", "ratios_test"):
        assert f'name="{name}"' in form, name
    assert f'<option value="{queue.pk}">{queue.name} (active)</option>' in form
    assert 'name="ratios_train" id="id_ratios_train" value="0.8"' in form
    assert 'name="include_adjudicated" id="id_include_adjudicated" checked' in form
    assert 'hx-get="/dashboard/datasets/count/" hx-trigger="load, change"' in form
    assert 'id="candidate-count"' in form


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"name": ""}, "name", "This field is required."),
    ({"queues": []}, "queues", "Pick at least one verification queue."),
    ({"queues": ["999999"]}, "queues", "Select a valid choice."),
    ({"min_agreement": "1.5"}, "min_agreement", "Ensure this value is less than or equal to 1."),
    ({"n_edits": "4"}, "n_edits", "Select a valid choice."),
    ({"ratios_train": "0.5"}, "ratios", "Ratios must add up to 1 (they add up to 0.7)."),
    ({"ratios_test": ""}, "ratios", "Give the share of each split (train, validation, test)."),
    ({"ratios_test": "-0.1", "ratios_train": "1"}, "ratios", "Ensure this value is greater than or equal to 0."),
])
def test_a_bad_form_answers_400_naming_the_field_and_stores_nothing(res_client, setup, overrides, field,
                                                                     message):
    pairs, queue = setup
    response = res_client.post(url("dataset-version-create"), create_data(queue, **overrides))
    assert response.status_code == 400
    errors = re.search(rf'<ul class="errors" id="id_{field}-errors" role="alert">(.*?)</ul>', html(response), re.S)
    assert errors, html(response)
    assert message in unescape(errors.group(1))
    assert not DatasetVersion.objects.exists() and not Job.objects.exists()
    # The answers are kept.
    assert "First cut.</textarea>" in html(response)


def test_service_errors_go_on_their_fields_and_htmx_gets_the_form_alone(res_client, researcher, setup):
    pairs, queue = setup
    build_version("taken", criteria={"queues": [queue.pk]})
    before = (DatasetVersion.objects.count(), Job.objects.count())
    # The name is the service's check (unique).
    response = res_client.post(url("dataset-version-create"), create_data(queue, name="taken"), **HTMX)
    assert response.status_code == 400
    page = html(response)
    assert page.startswith('<form id="version-create-form"')
    assert "A dataset version named &#x27;taken&#x27; exists already." in page
    assert 'id="id_name-errors"' in page
    # No verified pair matches (another generator): the criteria error is on the form.
    other = GeneratorFactory()
    response = res_client.post(url("dataset-version-create"),
                               create_data(queue, name="empty", generators=[str(other.pk)]))
    assert response.status_code == 400
    assert "criteria: No verified pairs match these criteria." in text(response)
    assert (DatasetVersion.objects.count(), Job.objects.count()) == before


def test_creating_a_version_redirects_to_it_and_starts_its_build_job(res_client, researcher, setup):
    pairs, queue = setup
    response = res_client.post(url("dataset-version-create"),
                               create_data(queue, n_edits="", min_agreement="0.5", include_adjudicated=None,
                                           ratios_train="0.7", ratios_validation="0.2", ratios_test="0.1"))
    version = DatasetVersion.objects.get(name="kitchen-v1")
    assert response.status_code == 302 and response["Location"] == url("dataset-version-detail", version.pk)
    assert version.status == VersionStatus.BUILDING and version.created_by == researcher
    assert version.description == "First cut." and version.parent is None
    assert version.criteria == {"queues": [queue.pk], "generators": [], "rules": [], "n_edits": "",
                                "min_agreement": 0.5, "include_adjudicated": False}
    assert version.ratios == {"train": 0.7, "validation": 0.2, "test": 0.1}
    job = version.build_job
    assert job.kind == "build_dataset" and job.params == {"version": version.pk} and job.created_by == researcher
    page = res_client.get(response["Location"])
    assert "Dataset version “kitchen-v1”: job" in text(page)

    # Through htmx the page navigates with HX-Redirect.
    response = res_client.post(url("dataset-version-create"), create_data(queue, name="kitchen-v2"), **HTMX)
    second = DatasetVersion.objects.get(name="kitchen-v2")
    assert response.status_code == 200 and response["HX-Redirect"] == url("dataset-version-detail", second.pk)


def test_the_live_count_follows_the_criteria(res_client, setup):
    pairs, queue = setup
    count_url = url("dataset-version-count")

    def count(**params):
        return res_client.get(count_url, {"include_adjudicated": "on", **params}, **HTMX)

    # Nothing picked yet: a hint, not an error.
    response = count()
    assert response.status_code == 200 and "Pick a verification queue" in text(response)
    assert "data-count" not in html(response)
    # Verified: pairs 0-8 and 11 (9 is rejected, 10 disputed).
    response = count(queues=[queue.pk])
    assert response.status_code == 200 and 'data-count="10"' in html(response)
    assert "10 verified pairs match" in text(response)
    n_one = sum(1 for pair in pairs[:9] + pairs[11:] if pair.n_edits == 1)
    assert f'data-count="{n_one}"' in html(count(queues=[queue.pk], n_edits="1"))
    assert 'data-count="0"' in html(count(queues=[queue.pk], generators=[GeneratorFactory().pk]))
    # Adjudication makes pair 10 count, unless adjudicated pairs are left out.
    item_adjudicate(item=QueueItem.objects.get(queue=queue, pair=pairs[10]), status=ItemStatus.VERIFIED,
                    decided_by=None)
    assert 'data-count="11"' in html(count(queues=[queue.pk]))
    assert 'data-count="10"' in html(res_client.get(count_url, {"queues": [queue.pk]}, **HTMX))
    # Bad input: 400 naming the field.
    response = count(queues=[queue.pk], min_agreement="2")
    assert response.status_code == 400 and "Minimum agreement:" in text(response)
    response = count(queues=["abc"])
    assert response.status_code == 400 and "Verification queues:" in text(response)


# --- A version's page --------------------------------------------------------------------------------------------


def test_a_building_version_shows_its_job_progress_until_it_is_frozen(res_client, researcher, setup):
    pairs, queue = setup
    version = version_create(name="b1", criteria={"queues": [queue.pk]}, created_by=researcher)
    page = res_client.get(url("dataset-version-detail", version.pk))
    assert page.status_code == 200
    content = html(page)
    build_url = url("dataset-version-build", version.pk)
    assert f'<div id="version-build" data-status="building" hx-get="{build_url}" hx-trigger="every 2s"' in content
    assert 'role="progressbar"' in content and f"job {version.build_job_id}" in content
    assert 'id="card"' not in content and 'id="downloads"' not in content and 'id="new-from-this"' not in content
    block = res_client.get(build_url, **HTMX)
    assert block.status_code == 200 and 'hx-trigger="every 2s"' in html(block) and "HX-Refresh" not in block

    run_job_inline(version.build_job)
    block = res_client.get(build_url, **HTMX)
    # Frozen: the block stops polling and the whole page reloads to show the result.
    assert block["HX-Refresh"] == "true" and "hx-trigger" not in html(block)
    assert 'data-status="frozen"' in html(block) and 'aria-valuenow="100"' in html(block)
    content = html(res_client.get(url("dataset-version-detail", version.pk)))
    assert 'id="version-build"' not in content and 'id="card"' in content


def test_a_building_version_whose_job_was_cancelled_stops_polling(res_client, setup):
    pairs, queue = setup
    version = version_create(name="stuck", criteria={"queues": [queue.pk]})
    Job.objects.filter(pk=version.build_job_id).update(status=JobStatus.CANCELLED)
    response = res_client.get(url("dataset-version-detail", version.pk))
    assert "hx-trigger" not in re.search(r'<div id="version-build".*?>', html(response), re.S).group(0)
    assert "The build job is cancelled, so this version will not be built" in text(response)


def test_a_failed_version_shows_its_error(res_client, setup):
    pairs, queue = setup
    version = version_create(name="bad", criteria={"queues": [queue.pk]})
    build_fail(version_id=version.pk, error="Traceback: <disk full>")
    page = res_client.get(url("dataset-version-detail", version.pk))
    assert page.status_code == 200
    assert '<pre class="error-text" id="version-error">Traceback: &lt;disk full&gt;</pre>' in html(page)
    assert 'id="downloads"' not in html(page)


def test_a_frozen_version_shows_its_hash_plots_agreement_readme_and_downloads(res_client, researcher, setup):
    pairs, queue = setup
    version = build_version("frozen-v1", criteria={"queues": [queue.pk]}, description="Kitchen <b>pairs</b>.",
                            created_by=researcher)
    response = res_client.get(url("dataset-version-detail", version.pk))
    assert response.status_code == 200
    content = html(response)
    assert f'<code id="content-hash">{version.content_hash}</code>' in content
    card = version.card
    splits = card["split"]
    assert (f"{version.entry_count} pairs ({splits['train']} train · {splits['validation']} validation · "
            f"{splits['test']} test)") in text(response)
    assert f"{queue.name} (#{queue.pk})" in text(response)

    # The plots: one canvas per count of the card, and the numbers they draw.
    plots = json_script(response, "version-plots")
    assert list(plots) == ["split", "relation_kind", "n_edits", "generator", "category", "agreement"]
    for key, plot in plots.items():
        assert dict(zip(plot["labels"], plot["values"], strict=True)) == {
            str(label): count for label, count in card[key].items()}, key
        assert sum(plot["values"]) >= 1
        assert f'<canvas data-plot="{key}"' in content
    # In reading order whatever order the database keeps the card's keys in (PostgreSQL's jsonb sorts them).
    assert plots["split"] == {"title": "Pairs per split", "labels": ["train", "validation", "test"],
                              "values": [splits["train"], splits["validation"], splits["test"]]}
    assert sum(plots["split"]["values"]) == 10
    assert sum(plots["n_edits"]["values"]) == 10 and sum(plots["agreement"]["values"]) == 10
    assert plots["agreement"]["labels"] == sorted(card["agreement"]) and "0.6-0.7" in plots["agreement"]["labels"]
    for key in ("relation_kind", "generator", "category"):
        values = plots[key]["values"]
        assert values == sorted(values, reverse=True), key
    assert "/static/vendor/chartjs/chart.umd.min.js" in content and "/static/js/datasets.js" in content

    # The source queue's agreement.
    row = re.search(rf'<tr data-queue="{queue.pk}">.*?</tr>', content, re.S).group(0)
    stats = card["queues"][0]
    assert f'<td class="num" data-col="verdicts">{stats["verdicts"]}</td>' in row
    assert f'{100 * stats["percent_agreement"]:.1f} %' in row
    assert f'{stats["fleiss_kappa"]:.3f}' in row and f'{stats["krippendorff_alpha"]:.3f}' in row

    # The README, escaped in a <pre>.
    readme = re.search(r'<pre class="json" id="readme-text">(.*?)</pre>', content, re.S).group(1)
    assert unescape(readme) == version.readme
    assert "Kitchen &lt;b&gt;pairs&lt;/b&gt;." in readme

    # Downloads: small enough to stream, so direct links to the REST stream, per format and split.
    for fmt in ("jsonl", "parquet", "tar"):
        base = url("api-dataset-version-download", version.pk, fmt)
        assert f'<a href="{base}" download data-download="stream">' in content
        for split in ("train", "validation", "test"):
            assert f'<a href="{base}?split={split}" download data-download="stream">' in content
    assert 'name="export"' not in content
    # The JSONL link, downloaded with the session, is the canonical lines: its SHA-256 is the content hash.
    download = res_client.get(url("api-dataset-version-download", version.pk, "jsonl"))
    assert download.status_code == 200
    assert hashlib.sha256(b"".join(download.streaming_content)).hexdigest() == version.content_hash
    train = res_client.get(url("api-dataset-version-download", version.pk, "jsonl") + "?split=train")
    assert len(b"".join(train.streaming_content).splitlines()) == splits["train"]

    # "New version from this one".
    assert f'href="{url("dataset-version-list")}?parent={version.pk}#create" id="new-from-this"' in content


def test_new_version_from_this_one_prefills_the_form_and_the_child_shows_its_diff(res_client, researcher, setup):
    pairs, queue = setup
    parent = build_version("parent", criteria={"queues": [queue.pk], "min_agreement": 0.9, "n_edits": ""},
                           ratios={"train": 0.6, "validation": 0.2, "test": 0.2})
    page = html(res_client.get(url("dataset-version-list") + f"?parent={parent.pk}"))
    form = re.search(r'<form id="version-create-form".*?</form>', page, re.S).group(0)
    assert re.search(rf'<option value="{parent.pk}" selected>parent ', form)
    assert f'<option value="{queue.pk}" selected>' in form
    assert 'name="min_agreement" value="0.9"' in form
    assert 'name="ratios_train" id="id_ratios_train" value="0.6"' in form
    assert 'name="ratios_validation" id="id_ratios_validation" value="0.2"' in form
    # An unknown parent is said, and the form starts empty.
    assert "No frozen dataset version 999999 to start from." in text(
        res_client.get(url("dataset-version-list") + "?parent=999999"))

    # Pair 10 is adjudicated verified; the child takes every agreement: two pairs more.
    item_adjudicate(item=QueueItem.objects.get(queue=queue, pair=pairs[10]), status=ItemStatus.VERIFIED,
                    decided_by=researcher)
    response = res_client.post(url("dataset-version-create"),
                               create_data(queue, name="child", parent=str(parent.pk), min_agreement="0",
                                           ratios_train="0.6", ratios_validation="0.2", ratios_test="0.2"))
    child = DatasetVersion.objects.get(name="child")
    assert response.status_code == 302 and child.parent == parent and child.split_salt == parent.split_salt
    run_job_inline(child.build_job)
    child.refresh_from_db()
    response = res_client.get(url("dataset-version-detail", child.pk))
    content = html(response)
    assert f'<a href="{url("dataset-version-detail", parent.pk)}">parent</a>' in content
    diff = re.search(r'<section class="card" id="diff">.*?</section>', content, re.S).group(0)
    assert child.diff["added"] == 2
    assert '<dd data-diff="added"><strong data-count="2">2</strong> pairs' in diff
    for pair in (pairs[8], pairs[10]):
        assert f'<a href="{url("pair-detail", pair.pk)}" data-pair="{pair.pk}">{pair.pk}</a>' in diff
    assert '<dd data-diff="removed"><strong data-count="0">0</strong> pairs</dd>' in diff
    assert f'data-count="{child.diff["relabelled"]}"' in diff
    # The pair links lead to the pair pages.
    assert res_client.get(url("pair-detail", pairs[8].pk)).status_code == 200
    # A parent that is not frozen is refused on its field.
    building = version_create(name="still-building", criteria={"queues": [queue.pk]})
    response = res_client.post(url("dataset-version-create"),
                               create_data(queue, name="child-2", parent=str(building.pk)))
    assert response.status_code == 400 and 'id="id_parent-errors"' in html(response)
    assert not DatasetVersion.objects.filter(name="child-2").exists()


def test_a_large_export_is_made_by_a_job_and_offered_with_its_checksum(res_client, researcher, setup, settings):
    pairs, queue = setup
    version = build_version("big", criteria={"queues": [queue.pk]})
    settings.DATASET_STREAM_MAX_ENTRIES = {"jsonl": 1_000, "parquet": 0, "tar": 0}
    content = html(res_client.get(url("dataset-version-detail", version.pk)))
    cell = re.search(r'<div class="download" id="download-parquet-all".*?</div>', content, re.S).group(0)
    assert 'data-mode="export"' in cell and 'name="export"' in cell
    assert f'hx-post="{url("dataset-version-export", version.pk)}"' in cell
    assert 'data-mode="stream"' in re.search(r'<div class="download" id="download-jsonl-all".*?</div>',
                                             content, re.S).group(0)

    # The Export button (htmx): the cell comes back with the export job's progress, polling.
    export_url = url("dataset-version-export", version.pk)
    response = res_client.post(export_url, {"format": "parquet", "split": ""}, **HTMX)
    assert response.status_code == 200
    export = DatasetExport.objects.get()
    assert (export.version, export.format, export.split, export.status, export.created_by) == (
        version, "parquet", "", ExportStatus.BUILDING, researcher)
    assert export.job.kind == "export_dataset"
    cell = html(response)
    assert cell.startswith('<div class="download" id="download-parquet-all"')
    assert 'role="progressbar"' in cell and 'hx-trigger="every 2s"' in cell
    assert f'data-export="{export.pk}" data-export-status="building"' in cell
    # Asking again finds the same export; a plain form post redirects back to the downloads.
    response = res_client.post(export_url, {"format": "parquet", "split": ""})
    assert response.status_code == 302 and response["Location"].endswith("#downloads")
    assert DatasetExport.objects.count() == 1

    run_job_inline(export.job)
    export.refresh_from_db()
    assert export.status == ExportStatus.READY
    poll = res_client.get(url("dataset-version-download-cell", version.pk) + "?format=parquet&split=", **HTMX)
    cell = html(poll)
    assert poll.status_code == 200 and "hx-trigger" not in cell
    link = url("api-dataset-export-download", export.pk)
    assert f'<a href="{link}" download data-download="export">' in cell
    assert f">{export.sha256}</code>" in cell and f"{export.rows} pairs" in cell
    download = res_client.get(link)
    assert download.status_code == 200
    assert hashlib.sha256(b"".join(download.streaming_content)).hexdigest() == export.sha256
    assert int(download["Content-Length"]) == export.size

    # One split, as a tar: its own export.
    assert version.card["split"]["train"] > 0
    response = res_client.post(export_url, {"format": "tar", "split": "train"}, **HTMX)
    assert html(response).startswith('<div class="download" id="download-tar-train"')
    assert DatasetExport.objects.get(format="tar").split == "train"
    # Bad input names the field; a streamable one needs no job.
    response = res_client.post(export_url, {"format": "zip", "split": ""}, **HTMX)
    assert response.status_code == 400 and "format:" in html(response)
    response = res_client.post(export_url, {"format": "jsonl", "split": ""}, **HTMX)
    assert 'data-download="stream"' in html(response)
    assert DatasetExport.objects.count() == 2


def test_a_version_that_is_not_frozen_offers_no_export(res_client, setup):
    pairs, queue = setup
    version = version_create(name="wip", criteria={"queues": [queue.pk]})
    response = res_client.post(url("dataset-version-export", version.pk), {"format": "jsonl", "split": ""}, **HTMX)
    assert response.status_code == 400 and "only frozen versions export" in html(response)
    assert not DatasetExport.objects.exists()
    assert res_client.get(url("dataset-version-detail", 999999)).status_code == 404
