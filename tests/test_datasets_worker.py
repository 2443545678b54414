"""Dataset versions and large exports on a real Celery worker: the build job freezes the version, the export
job writes the file through the storage API, and the download carries the file's checksum."""

import hashlib

import pytest

from spatiallab.datasets.models import DatasetExport, DatasetVersion, ExportStatus, VersionStatus
from spatiallab.jobs.models import Job, JobStatus
from tests.dataset_data import verified_pairs
from tests.factories import token_client
from tests.worker_procs import wait_for


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_build_and_export_on_a_real_worker(workers, researcher):
    workers.start(queues="cpu")  # first: the pool points this process's broker at the worker's
    pairs, queue = verified_pairs(6, name="worker")
    api = token_client(researcher)
    created = api.post("/api/v1/dataset-versions/", {"name": "on-worker", "criteria": {"queues": [queue.pk]}},
                       format="json")
    assert created.status_code == 201, created.json()
    job_id = created.json()["build_job"]
    wait_for(lambda: Job.objects.get(pk=job_id).status in (JobStatus.SUCCEEDED, JobStatus.FAILED), timeout=90,
             message="build job")
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.SUCCEEDED, job.error
    version = DatasetVersion.objects.get(pk=created.json()["id"])
    assert version.status == VersionStatus.FROZEN and version.entry_count == 6
    assert (job.progress_done, job.progress_total) == (6, 6) and job.result["content_hash"] == version.content_hash

    export = api.post("/api/v1/dataset-exports/", {"version": version.pk, "format": "tar"}, format="json").json()
    wait_for(lambda: DatasetExport.objects.get(pk=export["id"]).status != ExportStatus.BUILDING, timeout=90,
             message="export job")
    ready = api.get(f"/api/v1/dataset-exports/{export['id']}/").json()
    assert ready["status"] == "ready", ready["error"]
    response = api.get(ready["download"])
    body = b"".join(response.streaming_content)
    assert hashlib.sha256(body).hexdigest() == ready["sha256"] == response["X-Checksum-SHA256"]
