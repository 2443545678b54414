"""REST endpoints of dataset versions and exports: who sees them, creating (errors name the field, nothing
stored), no way to change a frozen version, ETags on immutable resources, streaming and job-made downloads."""

import hashlib
import io
import json
import tarfile

import pytest
from django.test import override_settings

from spatiallab.datasets.models import DatasetExport, DatasetVersion, ExportStatus
from spatiallab.jobs.models import Job
from tests.dataset_data import build_version, run_job_inline, verified_pairs
from tests.factories import token_client


@pytest.fixture
def queue(db):
    return verified_pairs(8, name="api")[1]


@pytest.fixture
def version(queue):
    return build_version("api-v1", criteria={"queues": [queue.pk]})


def _body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_annotators_and_anonymous_see_nothing(version, annotator, client):
    ann = token_client(annotator)
    for url in ["/api/v1/dataset-versions/", f"/api/v1/dataset-versions/{version.pk}/",
                f"/api/v1/dataset-versions/{version.pk}/download/jsonl/", "/api/v1/dataset-exports/"]:
        assert ann.get(url).status_code == 403, url
        assert client.get(url).status_code in (401, 403), url
    assert ann.post("/api/v1/dataset-versions/", {"name": "x", "criteria": {"queues": [1]}},
                    format="json").status_code == 403


def test_create_builds_a_version_through_its_job(api, queue, researcher):
    response = api.post("/api/v1/dataset-versions/", {"name": "made", "description": "d", "criteria": {
        "queues": [queue.pk], "min_agreement": 0.5}, "ratios": {"train": 0.5, "validation": 0.25, "test": 0.25}},
        format="json")
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["status"] == "building" and data["downloads"] == {} and data["criteria"]["min_agreement"] == 0.5
    job = Job.objects.get(pk=data["build_job"])
    assert job.kind == "build_dataset" and job.params == {"version": data["id"]}
    run_job_inline(job)
    frozen = api.get(f"/api/v1/dataset-versions/{data['id']}/").json()
    assert frozen["status"] == "frozen" and frozen["entry_count"] == 8 and len(frozen["content_hash"]) == 64
    assert frozen["ratios"] == {"train": 0.5, "validation": 0.25, "test": 0.25}
    assert set(frozen["downloads"]) == {"jsonl", "parquet", "tar"}
    listed = api.get("/api/v1/dataset-versions/", {"status": "frozen"}).json()
    assert [v["name"] for v in listed["results"]] == ["made"]


@pytest.mark.parametrize("payload, field", [
    ({"criteria": {"queues": [1]}}, "name"),
    ({"name": "x"}, "criteria"),
    ({"name": "x", "criteria": {"queues": []}}, "criteria"),
    ({"name": "x", "criteria": {"queues": ["a"]}}, "criteria"),
    ({"name": "x", "criteria": {"queues": [999999]}}, "queues"),
    ({"name": "x", "criteria": {"queues": [1], "min_agreement": 3}}, "criteria"),
    ({"name": "x", "criteria": {"queues": [1], "colour": "red"}}, "criteria"),
    ({"name": "x", "criteria": {"queues": [1]}, "ratios": {"train": 0.9, "validation": 0.9, "test": 0.1}}, "ratios"),
    ({"name": "x", "criteria": {"queues": [1]}, "parent": 999999}, "parent"),
])
def test_bad_input_names_the_field_and_stores_nothing(api, queue, payload, field):
    if payload.get("criteria", {}).get("queues") == [1]:
        payload["criteria"]["queues"] = [queue.pk]
    response = api.post("/api/v1/dataset-versions/", payload, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert DatasetVersion.objects.count() == 0 and not Job.objects.filter(kind="build_dataset").exists()


def test_a_frozen_version_has_no_write_endpoints_and_a_child_is_made_instead(api, version, queue):
    url = f"/api/v1/dataset-versions/{version.pk}/"
    for method in ("put", "patch", "delete"):
        assert getattr(api, method)(url, {"name": "renamed"}, format="json").status_code == 405
    assert DatasetVersion.objects.get(pk=version.pk).name == "api-v1"
    child = api.post("/api/v1/dataset-versions/", {"name": "child", "parent": version.pk}, format="json")
    assert child.status_code == 201, child.json()
    assert child.json()["criteria"] == version.criteria and child.json()["parent"] == version.pk
    run_job_inline(Job.objects.get(pk=child.json()["build_job"]))
    diff = api.get(f"/api/v1/dataset-versions/{child.json()['id']}/diff/").json()
    assert (diff["added"], diff["removed"], diff["relabelled"], diff["against"]) == (0, 0, 0, version.pk)
    assert api.get(f"/api/v1/dataset-versions/{version.pk}/diff/").status_code == 409  # no parent
    against = api.get(f"/api/v1/dataset-versions/{version.pk}/diff/", {"against": child.json()["id"]})
    assert against.status_code == 200 and against.json()["added"] == 0


def test_etags_on_immutable_resources(api, version):
    url = f"/api/v1/dataset-versions/{version.pk}/"
    first = api.get(url)
    etag = first["ETag"]
    assert version.content_hash in etag
    assert api.get(url, HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert api.get(url, HTTP_IF_NONE_MATCH='"other"').status_code == 200
    download = f"/api/v1/dataset-versions/{version.pk}/download/jsonl/"
    streamed = api.get(download)
    assert streamed.status_code == 200 and streamed["ETag"] != etag
    assert api.get(download, HTTP_IF_NONE_MATCH=streamed["ETag"]).status_code == 304
    readme = api.get(f"/api/v1/dataset-versions/{version.pk}/readme/")
    assert readme["Content-Type"].startswith("text/markdown") and readme.content.decode() == version.readme
    assert api.get(f"/api/v1/dataset-versions/{version.pk}/readme/",
                   HTTP_IF_NONE_MATCH=readme["ETag"]).status_code == 304


def test_small_exports_stream_with_their_hash(api, version):
    response = api.get(f"/api/v1/dataset-versions/{version.pk}/download/jsonl/")
    body = _body(response)
    assert response.streaming and hashlib.sha256(body).hexdigest() == version.content_hash
    assert response["X-Dataset-Content-Hash"] == version.content_hash
    assert "readme" in response["Link"] and response["Content-Disposition"].endswith('.jsonl"')
    train = _body(api.get(f"/api/v1/dataset-versions/{version.pk}/download/jsonl/", {"split": "train"}))
    assert {json.loads(line)["split"] for line in train.decode().splitlines()} <= {"train"}
    tar = _body(api.get(f"/api/v1/dataset-versions/{version.pk}/download/tar/"))
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        assert "SHA256SUMS" in archive.getnames()
    assert api.get(f"/api/v1/dataset-versions/{version.pk}/download/jsonl/", {"split": "dev"}).status_code == 400
    assert api.get(f"/api/v1/dataset-versions/{version.pk}/download/csv/").status_code == 404
    entries = api.get(f"/api/v1/dataset-versions/{version.pk}/entries/", {"limit": 3}).json()
    assert entries["count"] == 8 and len(entries["results"]) == 3
    assert entries["results"][0]["entry"]["pair_id"] == entries["results"][0]["pair"]


def test_large_exports_go_through_a_job_and_download_with_their_checksum(api, version):
    with override_settings(DATASET_STREAM_MAX_ENTRIES={"jsonl": 2, "parquet": 2, "tar": 2}):
        refused = api.get(f"/api/v1/dataset-versions/{version.pk}/download/parquet/")
    assert refused.status_code == 409 and refused.json()["code"] == "too_large_to_stream"
    created = api.post("/api/v1/dataset-exports/", {"version": version.pk, "format": "parquet"}, format="json")
    assert created.status_code == 201, created.json()
    export = created.json()
    assert export["status"] == "building" and export["download"] is None
    assert api.get(f"/api/v1/dataset-exports/{export['id']}/download/").json()["code"] == "not_ready"
    same = api.post("/api/v1/dataset-exports/", {"version": version.pk, "format": "parquet"}, format="json")
    assert same.status_code == 200 and same.json()["id"] == export["id"]
    run_job_inline(Job.objects.get(pk=export["job"]))
    ready = api.get(f"/api/v1/dataset-exports/{export['id']}/").json()
    assert ready["status"] == "ready" and ready["rows"] == 8
    response = api.get(ready["download"])
    body = _body(response)
    assert hashlib.sha256(body).hexdigest() == ready["sha256"] == response["X-Checksum-SHA256"]
    assert int(response["Content-Length"]) == len(body) == ready["size"]
    assert api.get(ready["download"], HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304
    assert DatasetExport.objects.get(pk=export["id"]).status == ExportStatus.READY
    assert [e["id"] for e in api.get("/api/v1/dataset-exports/", {"file_format": "parquet"}).json()["results"]] == [
        export["id"]]
    assert api.get("/api/v1/dataset-exports/", {"file_format": "tar"}).json()["count"] == 0
    bad = api.post("/api/v1/dataset-exports/", {"version": version.pk, "format": "zip"}, format="json")
    assert bad.status_code == 400 and "format" in bad.json()


def test_a_building_version_does_not_export(api, queue):
    response = api.post("/api/v1/dataset-versions/", {"name": "b", "criteria": {"queues": [queue.pk]}},
                        format="json")
    pk = response.json()["id"]
    assert api.get(f"/api/v1/dataset-versions/{pk}/download/jsonl/").json()["code"] == "not_frozen"
    assert "ETag" not in api.get(f"/api/v1/dataset-versions/{pk}/")
    assert api.post("/api/v1/dataset-exports/", {"version": pk, "format": "jsonl"},
                    format="json").json()["code"] == "not_frozen"


def test_a_tampered_version_is_refused_before_streaming(api, version):
    from tests.test_datasets_services import drop_guards, raw

    drop_guards()
    raw(f"UPDATE datasets_datasetentry SET line = line || ' ' WHERE version_id = {version.pk}")
    response = api.get(f"/api/v1/dataset-versions/{version.pk}/download/jsonl/")
    assert response.status_code == 409 and response.json()["code"] == "content_mismatch"
