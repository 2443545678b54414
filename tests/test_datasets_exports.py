"""Every export format, loaded with the client libraries researchers use (Hugging Face `datasets`, pyarrow,
tarfile, the sha256sum manifest) and compared with the database and the image files; the export job and the
management command write the same bytes as the stream."""

import hashlib
import io
import json
import tarfile

import pyarrow.parquet as pq
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from PIL import Image

from spatiallab.datasets.exports import export_chunks, write_export
from spatiallab.datasets.models import DatasetEntry, DatasetExport, ExportStatus
from spatiallab.datasets.services import export_request
from tests.dataset_data import build_version, run_job_inline, verified_pairs


@pytest.fixture
def version(db):
    pairs, queue = verified_pairs(10, name="export")
    return build_version("export-v1", criteria={"queues": [queue.pk]}, description="Exported in tests.")


def _db_entries(version, split=""):
    rows = DatasetEntry.objects.filter(version=version).order_by("pair_id")
    if split:
        rows = rows.filter(split=split)
    return [json.loads(line) for line in rows.values_list("line", flat=True)]


def _image(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def test_jsonl_loads_with_datasets_and_matches_the_database(version, tmp_path):
    import datasets

    path = tmp_path / "v.jsonl"
    path.write_bytes(b"".join(export_chunks(version, "jsonl")))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == version.content_hash
    loaded = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))
    entries = _db_entries(version)
    assert loaded.num_rows == len(entries) == version.entry_count == 10
    assert loaded["pair_id"] == [e["pair_id"] for e in entries]
    assert loaded["prompt"] == [e["prompt"] for e in entries]
    assert loaded["split"] == [e["split"] for e in entries]
    for row, entry in zip(loaded, entries, strict=True):
        assert hashlib.sha256(_image(row["chosen"]["path"])).hexdigest() == row["chosen"]["sha256"]
        assert row["rejected"] == entry["rejected"]
    # One split only: its lines, in order.
    train = b"".join(export_chunks(version, "jsonl", "train")).decode().splitlines()
    assert [json.loads(line)["pair_id"] for line in train] == [e["pair_id"] for e in _db_entries(version, "train")]


def test_parquet_loads_with_datasets_as_images_in_the_preference_layout(version, tmp_path):
    import datasets

    path = tmp_path / "v.parquet"
    path.write_bytes(b"".join(export_chunks(version, "parquet")))
    table = pq.read_table(path)
    entries = _db_entries(version)
    assert table.num_rows == 10 and table.column_names[:3] == ["prompt", "chosen", "rejected"]
    metadata = table.schema.metadata
    assert json.loads(metadata[b"spatiallab.version"])["content_hash"] == version.content_hash
    assert metadata[b"spatiallab.readme"].decode() == version.readme
    loaded = datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))
    assert isinstance(loaded.features["chosen"], datasets.Image)
    assert isinstance(loaded.features["rejected"], datasets.Image)
    assert loaded["pair_id"] == [e["pair_id"] for e in entries]
    for row, entry in zip(loaded, entries, strict=True):
        assert row["prompt"] == entry["prompt"] and row["perturbed_prompt"] == entry["perturbed_prompt"]
        assert row["split"] == entry["split"] and json.loads(row["edits"]) == entry["edits"]
        chosen, rejected = row["chosen"], row["rejected"]
        assert isinstance(chosen, Image.Image) and chosen.size == (entry["width"], entry["height"])
        assert chosen.convert("RGB").getpixel((0, 0)) == (255, 0, 0)  # the winner images of the test data are red
        assert rejected.convert("RGB").getpixel((0, 0)) == (0, 0, 255)
    raw = table.to_pylist()
    for row, entry in zip(raw, entries, strict=True):
        assert hashlib.sha256(row["chosen"]["bytes"]).hexdigest() == entry["chosen"]["sha256"]
        assert hashlib.sha256(row["rejected"]["bytes"]).hexdigest() == entry["rejected"]["sha256"]
    # Row groups keep memory bounded: several of them with a small row-group size.
    from django.test import override_settings

    with override_settings(DATASET_PARQUET_ROW_GROUP=3):
        grouped = pq.ParquetFile(io.BytesIO(b"".join(export_chunks(version, "parquet"))))
    assert grouped.metadata.num_row_groups == 4 and grouped.metadata.num_rows == 10
    test_only = pq.read_table(io.BytesIO(b"".join(export_chunks(version, "parquet", "test"))))
    assert test_only.column("pair_id").to_pylist() == [e["pair_id"] for e in _db_entries(version, "test")]


def test_tar_holds_images_entries_readme_and_a_checked_manifest(version):
    data = b"".join(export_chunks(version, "tar"))
    entries = _db_entries(version)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        names = archive.getnames()
        files = {name: archive.extractfile(name).read() for name in names}
    assert names[0] == "README.md" and files["README.md"].decode() == version.readme
    assert names[-2:] == ["manifest.json", "SHA256SUMS"]
    # Every line of SHA256SUMS (sha256sum -c format) matches the member it names; all members are listed.
    listed = {}
    for line in files["SHA256SUMS"].decode().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
        assert hashlib.sha256(files[name]).hexdigest() == digest
    assert set(listed) == set(names) - {"SHA256SUMS"}
    manifest = json.loads(files["manifest.json"])
    assert manifest["content_hash"] == version.content_hash and manifest["entries"] == 10
    assert files["entries.jsonl"] == b"".join(export_chunks(version, "jsonl"))
    for entry in entries:
        for side in ("chosen", "rejected"):
            ref = entry[side]
            assert files[ref["path"]] == _image(ref["path"])
            assert hashlib.sha256(files[ref["path"]]).hexdigest() == ref["sha256"]


def test_the_job_and_the_command_write_what_the_stream_sends(version, tmp_path):
    streamed = b"".join(export_chunks(version, "parquet"))
    export, created = export_request(version=version, fmt="parquet")
    assert created and export.status == ExportStatus.BUILDING
    again, created_again = export_request(version=version, fmt="parquet")
    assert again.pk == export.pk and not created_again
    result = run_job_inline(export.job)
    export.refresh_from_db()
    assert export.status == ExportStatus.READY and export.rows == 10 and result["sha256"] == export.sha256
    stored = _image(export.file)
    assert stored == streamed and hashlib.sha256(stored).hexdigest() == export.sha256 and export.size == len(stored)
    assert export.file.endswith(f"{version.content_hash[:12]}.parquet")
    out = tmp_path / "cmd.jsonl"
    call_command("export_dataset", str(version.pk), "--format", "jsonl", "--output", str(out), "--no-progress")
    assert hashlib.sha256(out.read_bytes()).hexdigest() == version.content_hash
    assert (tmp_path / "cmd.jsonl.README.md").read_text() == version.readme
    with open(tmp_path / "w.tar", "wb") as handle:
        size, digest = write_export(version, "tar", "", handle)
    assert size == (tmp_path / "w.tar").stat().st_size


def test_a_tampered_version_fails_the_job_and_the_command_leaves_no_file(version, tmp_path):
    from django.core.management.base import CommandError

    image = _db_entries(version)[0]["chosen"]["path"]
    default_storage.delete(image)
    default_storage.save(image, ContentFile(b"tampered"))
    export, _ = export_request(version=version, fmt="tar")
    with pytest.raises(Exception, match="changed since the version was frozen"):
        run_job_inline(export.job)
    export.refresh_from_db()
    assert export.status == ExportStatus.FAILED and not export.file
    assert not default_storage.exists(f"exports/v{version.pk}/{export.pk}/{export.filename}")
    assert DatasetExport.objects.filter(status=ExportStatus.READY).count() == 0
    out = tmp_path / "cmd.tar"
    with pytest.raises(CommandError, match="changed since the version was frozen"):
        call_command("export_dataset", str(version.pk), "--format", "tar", "--output", str(out), "--no-progress")
    assert not out.exists()
