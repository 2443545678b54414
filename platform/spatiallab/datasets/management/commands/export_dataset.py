import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from spatiallab.datasets.exports import EXTENSIONS, NotFrozen, export_filename, selected_count, write_export
from spatiallab.datasets.models import DatasetVersion
from spatiallab.datasets.services import ContentMismatch


class Command(BaseCommand):
    help = (
        "Writes an export of a frozen dataset version (JSONL, Parquet with embedded images, or tar with a checksum "
        "manifest) to a file, through the same code as the REST download and the export job: the content hash "
        "and every image's checksum are checked while writing, and a mismatch leaves no file. The version's "
        "README is written next to the file as <output>.README.md (the tar and Parquet files carry it inside too)."
    )

    def add_arguments(self, parser):
        parser.add_argument("version", help="Version id or name.")
        parser.add_argument("--format", choices=list(EXTENSIONS), default="jsonl")
        parser.add_argument("--split", choices=["train", "validation", "test"], default="",
                            help="Only this split (default: every split).")
        parser.add_argument("--output", "-o", default=None,
                            help="File to write; default: the export's name in the current directory; - for stdout.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar on stderr.")

    def handle(self, *args, **options):
        key = options["version"]
        version = DatasetVersion.objects.filter(**({"pk": int(key)} if key.isdigit() else {"name": key})).first()
        if version is None:
            raise CommandError(f"No dataset version {key!r}.")
        fmt, split = options["format"], options["split"]
        total = version.entry_count
        bar = tqdm(total=total, unit="entry", file=sys.stderr, disable=options["no_progress"],
                   desc=f"{version.name} -> {fmt}")

        def progress(read: int) -> None:
            bar.update(read - bar.n)

        output = options["output"] or export_filename(version, fmt, split)
        try:
            if output == "-":
                size, digest = write_export(version, fmt, split, sys.stdout.buffer, progress=progress)
            else:
                path = Path(output)
                partial = path.with_name(path.name + ".partial")
                try:
                    with open(partial, "wb") as handle:
                        size, digest = write_export(version, fmt, split, handle, progress=progress)
                    os.replace(partial, path)
                finally:
                    partial.unlink(missing_ok=True)
                path.with_name(path.name + ".README.md").write_text(version.readme)
        except (ContentMismatch, NotFrozen) as exc:
            raise CommandError(str(exc)) from None
        finally:
            bar.close()
        self.stderr.write(f"{selected_count(version, split):,} entries, {size:,} bytes, sha256 {digest}"
                          + ("" if output == "-" else f" -> {output}"))
