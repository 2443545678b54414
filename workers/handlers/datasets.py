"""Dataset jobs: building a version (entries chunk by chunk, then hash, card, README and freeze) and writing a
large export through the storage API."""

import os
import tempfile
import traceback

from django.core.files import File
from django.core.files.storage import default_storage
from django.utils import timezone

from spatiallab.datasets.exports import write_export
from spatiallab.datasets.models import DatasetExport, DatasetVersion, ExportStatus, VersionStatus
from spatiallab.datasets.services import (
    build_chunk,
    build_discard_after,
    build_fail,
    build_finish,
    build_total,
)
from spatiallab.jobs.services import JobCancelled

CHUNK = 1000  # pairs per chunk (their image files are hashed in the same step)


def run_build_dataset(ctx) -> dict:
    """Adds the entries of the selected pairs in pair-id order; the checkpoint is the last pair id read, and a
    resumed run first drops what a half-done chunk wrote. A failure or a cancel marks the version failed (a
    version is never left half-built and usable)."""
    version = DatasetVersion.objects.get(pk=ctx.params["version"])
    if version.status == VersionStatus.FROZEN:
        return {"version": version.pk, "entries": version.entry_count, "content_hash": version.content_hash}
    try:
        total = build_total(version=version)
        after = ctx.checkpoint.get("after", 0)
        read, added = ctx.checkpoint.get("read", 0), ctx.checkpoint.get("added", 0)
        build_discard_after(version=version, after=after)
        ctx.progress(read, total=total, message="resuming" if after else "selecting pairs")
        while True:
            n_read, n_added, last = build_chunk(version=version, after=after, size=CHUNK)
            if n_read == 0:
                break
            after, read, added = last, read + n_read, added + n_added
            ctx.progress(min(read, total), message=f"{added:,} entries from {read:,} verified pairs",
                         checkpoint={"after": after, "read": read, "added": added})
        ctx.progress(min(read, total), message="hashing, counting and freezing")
        version = build_finish(version=version)
    except JobCancelled:
        build_fail(version_id=version.pk, error="The build job was cancelled.")
        raise
    except Exception:
        # A handler error fails the job (a crashed worker's job is requeued instead and resumes).
        build_fail(version_id=version.pk, error=traceback.format_exc())
        raise
    return {"version": version.pk, "entries": version.entry_count, "content_hash": version.content_hash,
            "pairs_read": read}


def run_export_dataset(ctx) -> dict:
    """Writes the export to a temporary file (hash checked while writing), then hands it to the storage API
    under a name that says the version, its hash and the split; the row then offers it with its checksum."""
    export = DatasetExport.objects.select_related("version").get(pk=ctx.params["export"])
    version = export.version
    total = version.entry_count
    ctx.progress(0, total=total, message="reading entries")

    def progress(read: int) -> None:
        ctx.progress(read, message=f"{read:,} of {total:,} entries read")

    try:
        with tempfile.NamedTemporaryFile(prefix="export-", suffix=f".{export.format}", delete=False) as handle:
            temp = handle.name
            size, sha256 = write_export(version, export.format, export.split, handle, progress=progress)
        name = f"exports/v{version.pk}/{export.pk}/{export.filename}"
        if default_storage.exists(name):
            default_storage.delete(name)  # a retried job replaces its own half-uploaded file
        with open(temp, "rb") as handle:
            saved = default_storage.save(name, File(handle, name=export.filename))
    except Exception:
        DatasetExport.objects.filter(pk=export.pk).update(status=ExportStatus.FAILED,
                                                          error=traceback.format_exc()[-5000:],
                                                          finished_at=timezone.now())
        raise
    finally:
        if "temp" in locals() and os.path.exists(temp):
            os.unlink(temp)
    rows = total if not export.split else int(version.card.get("split", {}).get(export.split, 0))
    DatasetExport.objects.filter(pk=export.pk).update(status=ExportStatus.READY, file=saved, size=size,
                                                      sha256=sha256, rows=rows, finished_at=timezone.now())
    return {"export": export.pk, "file": saved, "size": size, "sha256": sha256, "rows": rows}
