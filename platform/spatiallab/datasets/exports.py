"""The one export code path: `export_chunks(version, format, split)` yields the bytes of a JSONL, Parquet or
tar export. The REST endpoint streams them (small exports), the `export_dataset` job writes them through the
storage API (large exports, any size), and the `export_dataset` management command writes them to a file.

Every export reads the whole version in pair-id order in keyset-paginated chunks (memory stays flat), hashes
every canonical line as it goes and compares the result with the frozen content hash at the end; image bytes
are checked against the SHA-256 each entry pinned when the version was built. A mismatch raises
ContentMismatch before the export is complete: a job fails and stores nothing, a command removes its partial
file, and a streamed response is cut off (the client sees an incomplete transfer, never a valid-looking file).
A streamed export is verified once before its first byte as well, so a tampered version is refused with an
error instead of a cut-off download wherever that is possible.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.core.files.storage import default_storage

from spatiallab.datasets.models import DatasetVersion, ExportFormat, VersionStatus
from spatiallab.datasets.services import ContentMismatch, entry_lines

EXTENSIONS = {ExportFormat.JSONL: "jsonl", ExportFormat.PARQUET: "parquet", ExportFormat.TAR: "tar"}
CONTENT_TYPES = {ExportFormat.JSONL: "application/x-ndjson", ExportFormat.PARQUET: "application/vnd.apache.parquet",
                 ExportFormat.TAR: "application/x-tar"}
FLUSH_BYTES = 256 * 1024  # JSONL output is yielded in pieces of about this size
IMAGE_THREADS = 8

Progress = Callable[[int], None]  # entries read so far


class NotFrozen(Exception):
    pass


def export_filename(version: DatasetVersion, fmt: str, split: str = "") -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", version.name).strip("-") or f"dataset-{version.pk}"
    return f"{slug}-{version.content_hash[:12]}{'-' + split if split else ''}.{EXTENSIONS[fmt]}"


def selected_count(version: DatasetVersion, split: str = "") -> int:
    if not split:
        return version.entry_count
    return int(version.card.get("split", {}).get(split, 0))


def streamable(version: DatasetVersion, fmt: str, split: str = "") -> bool:
    """Small enough to stream from the REST endpoint (settings.DATASET_STREAM_MAX_ENTRIES per format)."""
    return selected_count(version, split) <= settings.DATASET_STREAM_MAX_ENTRIES[fmt]


class _Verified:
    """A version's lines in order, with the running hash checked against the frozen one at the end."""

    def __init__(self, version: DatasetVersion, progress: Progress | None = None, every: int = 5000):
        self.version = version
        self.progress = progress
        self.every = every
        self.read = 0

    def rows(self) -> Iterator[tuple[str, str]]:
        digest = hashlib.sha256()
        for split, line in entry_lines(self.version.pk, columns="split, line"):
            digest.update(line.encode())
            digest.update(b"\n")
            self.read += 1
            if self.progress and self.read % self.every == 0:
                self.progress(self.read)
            yield split, line
        if self.progress:
            self.progress(self.read)
        found = digest.hexdigest()
        if found != self.version.content_hash or self.read != self.version.entry_count:
            raise ContentMismatch(
                f"dataset version {self.version.name!r}: {self.read} entries hashing to {found}, but it was frozen "
                f"with {self.version.entry_count} entries hashing to {self.version.content_hash}")


def _check(version: DatasetVersion, fmt: str, split: str) -> None:
    if version.status != VersionStatus.FROZEN:
        raise NotFrozen(f"dataset version {version.name!r} is {version.status}; only frozen versions export")
    if fmt not in EXTENSIONS:
        raise ValueError(f"unknown format {fmt!r}; known: {', '.join(EXTENSIONS)}")
    if split not in ("", "train", "validation", "test"):
        raise ValueError(f"unknown split {split!r}")


def export_chunks(version: DatasetVersion, fmt: str, split: str = "", *,
                  progress: Progress | None = None) -> Iterator[bytes]:
    """The export's bytes, in pieces. Raises ContentMismatch (before the export is complete) on tampering."""
    _check(version, fmt, split)
    verified = _Verified(version, progress)
    selected = ((s, line) for s, line in verified.rows() if not split or s == split)
    if fmt == ExportFormat.JSONL:
        return _jsonl(selected)
    if fmt == ExportFormat.PARQUET:
        return _parquet(version, selected)
    return _tar(version, selected)


# --- JSONL ------------------------------------------------------------------------------------------------


def _jsonl(rows: Iterable[tuple[str, str]]) -> Iterator[bytes]:
    buffer: list[str] = []
    size = 0
    for _, line in rows:
        buffer.append(line)
        size += len(line)
        if size >= FLUSH_BYTES:
            buffer.append("")
            yield "\n".join(buffer).encode()
            buffer, size = [], 0
    if buffer:
        buffer.append("")
        yield "\n".join(buffer).encode()


# --- Images -----------------------------------------------------------------------------------------------


def _read_image(ref: dict) -> bytes:
    with default_storage.open(ref["path"], "rb") as handle:
        data = handle.read()
    if hashlib.sha256(data).hexdigest() != ref["sha256"]:
        raise ContentMismatch(f"image {ref['path']} changed since the version was frozen (SHA-256 differs)")
    return data


def _with_images(rows: Iterable[tuple[str, str]], batch: int, pool: ThreadPoolExecutor) -> Iterator[list[tuple]]:
    """Batches of (entry, line, chosen bytes, rejected bytes); each batch's images are read in threads."""
    pending: list[tuple[dict, str]] = []

    def load(items: list[tuple[dict, str]]) -> list[tuple]:
        refs = [ref for entry, _ in items for ref in (entry["chosen"], entry["rejected"])]
        data = list(pool.map(_read_image, refs))
        return [(entry, line, data[2 * i], data[2 * i + 1]) for i, (entry, line) in enumerate(items)]

    for _, line in rows:
        pending.append((json.loads(line), line))
        if len(pending) >= batch:
            yield load(pending)
            pending = []
    if pending:
        yield load(pending)


# --- Parquet ----------------------------------------------------------------------------------------------


class _Sink:
    """A write-only file object that pyarrow writes into; the export drains it after every row group."""

    def __init__(self):
        self.buffer = bytearray()
        self.position = 0
        self.closed = False

    def write(self, data) -> int:
        self.buffer += data
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def drain(self) -> bytes:
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


PARQUET_FIELDS = [  # (column, pyarrow type factory name, Hugging Face feature)
    ("prompt", "string", {"dtype": "string", "_type": "Value"}),
    ("chosen", "image", {"_type": "Image"}),
    ("rejected", "image", {"_type": "Image"}),
    ("perturbed_prompt", "string", {"dtype": "string", "_type": "Value"}),
    ("pair_id", "int64", {"dtype": "int64", "_type": "Value"}),
    ("split", "string", {"dtype": "string", "_type": "Value"}),
    ("n_edits", "int32", {"dtype": "int32", "_type": "Value"}),
    ("edits", "string", {"dtype": "string", "_type": "Value"}),
    ("relation_kinds", "list_string", {"feature": {"dtype": "string", "_type": "Value"}, "_type": "List"}),
    ("category", "string", {"dtype": "string", "_type": "Value"}),
    ("generator", "string", {"dtype": "string", "_type": "Value"}),
    ("seed", "int64", {"dtype": "int64", "_type": "Value"}),
    ("width", "int32", {"dtype": "int32", "_type": "Value"}),
    ("height", "int32", {"dtype": "int32", "_type": "Value"}),
    ("agreement", "float64", {"dtype": "float64", "_type": "Value"}),
    ("decision", "string", {"dtype": "string", "_type": "Value"}),
]


def parquet_schema(version: DatasetVersion):
    import pyarrow as pa

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    types = {"string": pa.string(), "int64": pa.int64(), "int32": pa.int32(), "float64": pa.float64(),
             "image": image, "list_string": pa.list_(pa.string())}
    features = {name: feature for name, _, feature in PARQUET_FIELDS}
    metadata = {
        "huggingface": json.dumps({"info": {"features": features}}),
        "spatiallab.version": json.dumps({"name": version.name, "content_hash": version.content_hash,
                                          "entries": version.entry_count}),
        "spatiallab.readme": version.readme,
    }
    return pa.schema([(name, types[kind]) for name, kind, _ in PARQUET_FIELDS], metadata=metadata)


def _parquet_columns(batch: list[tuple]) -> dict[str, list]:
    columns: dict[str, list] = {name: [] for name, _, _ in PARQUET_FIELDS}
    for entry, _, chosen, rejected in batch:
        columns["prompt"].append(entry["prompt"])
        columns["chosen"].append({"bytes": chosen, "path": entry["chosen"]["path"]})
        columns["rejected"].append({"bytes": rejected, "path": entry["rejected"]["path"]})
        columns["perturbed_prompt"].append(entry["perturbed_prompt"])
        columns["pair_id"].append(entry["pair_id"])
        columns["split"].append(entry["split"])
        columns["n_edits"].append(entry["n_edits"])
        columns["edits"].append(json.dumps(entry["edits"], sort_keys=True))
        columns["relation_kinds"].append(sorted({edit["relation_kind"] for edit in entry["edits"]}))
        columns["category"].append(entry["category"])
        columns["generator"].append(entry["generator"])
        columns["seed"].append(entry["seed"])
        columns["width"].append(entry["width"])
        columns["height"].append(entry["height"])
        columns["agreement"].append(entry["verification"]["agreement"])
        columns["decision"].append(entry["verification"]["decision"])
    return columns


def _parquet(version: DatasetVersion, rows: Iterable[tuple[str, str]]) -> Iterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema(version)
    sink = _Sink()
    # A row group holds one batch of pairs (their images are most of its size).
    writer = pq.ParquetWriter(sink, schema, compression="zstd",
                              use_dictionary=["split", "category", "generator", "decision"])
    with ThreadPoolExecutor(max_workers=IMAGE_THREADS) as pool:
        for batch in _with_images(rows, settings.DATASET_PARQUET_ROW_GROUP, pool):
            writer.write_table(pa.Table.from_pydict(_parquet_columns(batch), schema=schema))
            yield sink.drain()
    writer.close()
    yield sink.drain()


# --- Tar ----------------------------------------------------------------------------------------------------


def _member(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, mtime, 0o644
    return info


def _tar(version: DatasetVersion, rows: Iterable[tuple[str, str]]) -> Iterator[bytes]:
    sink = _Sink()
    mtime = version.frozen_at.timestamp() if version.frozen_at else time.time()
    sums: list[tuple[str, str, int]] = []

    def add(name: str, data: bytes) -> None:
        archive.addfile(_member(name, len(data), mtime), io.BytesIO(data))
        sums.append((name, hashlib.sha256(data).hexdigest(), len(data)))

    archive = tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115 - closed below
    # The entries can be large: spooled to disk past 16 MB, added once the images are in.
    with (tempfile.SpooledTemporaryFile(max_size=16 << 20) as entries,
          ThreadPoolExecutor(max_workers=IMAGE_THREADS) as pool):
        add("README.md", version.readme.encode())
        yield sink.drain()
        entries_digest, entries_size, count = hashlib.sha256(), 0, 0
        for batch in _with_images(rows, 64, pool):
            for entry, line, chosen, rejected in batch:
                add(entry["chosen"]["path"], chosen)
                add(entry["rejected"]["path"], rejected)
                data = line.encode() + b"\n"
                entries.write(data)
                entries_digest.update(data)
                entries_size += len(data)
                count += 1
            yield sink.drain()
        entries.seek(0)
        archive.addfile(_member("entries.jsonl", entries_size, mtime), entries)
        sums.append(("entries.jsonl", entries_digest.hexdigest(), entries_size))
        yield sink.drain()
    manifest = {"name": version.name, "content_hash": version.content_hash, "entries": count,
                "files": [{"path": name, "sha256": digest, "size": size} for name, digest, size in sums]}
    add("manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode())
    sha256sums = "".join(f"{digest}  {name}\n" for name, digest, _ in sums)
    archive.addfile(_member("SHA256SUMS", len(sha256sums.encode()), mtime), io.BytesIO(sha256sums.encode()))
    archive.close()
    yield sink.drain()


# --- Writing to a file (job, command) -------------------------------------------------------------------------


def write_export(version: DatasetVersion, fmt: str, split: str, handle, *,
                 progress: Progress | None = None) -> tuple[int, str]:
    """Writes the export into an open binary file; returns (size, SHA-256 hex)."""
    digest, size = hashlib.sha256(), 0
    for chunk in export_chunks(version, fmt, split, progress=progress):
        handle.write(chunk)
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()
