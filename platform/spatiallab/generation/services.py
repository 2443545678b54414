"""Generators and pairs: registering generators, and storing what a generation job produced.

Storing a pair is file-first, row-second: both images and thumbnails are written through Django's storage
API under names that depend only on (generator, perturbed prompt, seed, role), then the rows are inserted
in one statement that skips pairs which already exist (the unique constraint decides, not a prior check). A
job killed between the two steps leaves files that its resumed run overwrites under the same names, so
nothing is orphaned and nothing is stored twice.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import logging
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from PIL import Image

from ml.generation.settings import validate_settings
from spatiallab.generation.models import Backend, GenerationFailure, Generator, Pair

logger = logging.getLogger(__name__)

THUMB_SIZE = 256
ENCODE_THREADS = min(8, os.cpu_count() or 1)
ROLES = ("winner", "loser")


# --- Generators ---------------------------------------------------------------------------------------------


def _checked_settings(backend: str, data) -> dict:
    if backend not in Backend.values:
        raise ValidationError({"backend": f"Unknown backend {backend!r}; known: {', '.join(Backend.values)}."})
    if data is not None and not isinstance(data, dict):
        raise ValidationError({"settings": "must be an object of setting names and values."})
    checked, errors = validate_settings(backend, data)
    if errors:
        raise ValidationError({"settings": [f"{name}: {message}" for name, message in errors.items()]})
    if _has_nul(checked):  # PostgreSQL's jsonb cannot hold "\u0000"
        raise ValidationError({"settings": "A setting contains a NUL character."})
    return checked


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(item) for item in value)
    return False


def generator_create(*, name: str, backend: str, settings: dict | None = None, description: str = "",
                     enabled: bool = True, created_by=None) -> Generator:
    name = (name or "").strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["A generator needs a name."]
    elif Generator.objects.filter(name=name).exists():
        errors["name"] = [f"A generator named {name!r} exists already."]
    try:
        checked = _checked_settings(backend, settings)
    except ValidationError as exc:  # report the name and the settings together
        errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    try:
        with transaction.atomic():
            return Generator.objects.create(name=name, backend=backend, settings=checked, description=description,
                                            enabled=enabled, created_by=created_by)
    except IntegrityError:  # registered by someone else in the meantime
        raise ValidationError({"name": f"A generator named {name!r} exists already."}) from None


def generator_update(*, generator: Generator, settings: dict | None = None, description: str | None = None,
                     enabled: bool | None = None) -> Generator:
    """Description and enabled can always change; settings only until the generator's first pair."""
    fields = []
    if settings is not None:
        checked = _checked_settings(generator.backend, settings)
        if checked != generator.settings:
            if Pair.objects.filter(generator=generator).exists():
                raise ValidationError({"settings": "This generator has made pairs, so its settings are frozen: "
                                                   "register a new generator for the new settings."})
            generator.settings = checked
            fields.append("settings")
    if description is not None:
        generator.description = description
        fields.append("description")
    if enabled is not None:
        generator.enabled = enabled
        fields.append("enabled")
    if fields:
        generator.save(update_fields=fields)
    return generator


DEMO_GENERATORS = [
    ("Scene renderer", {"width": 512, "height": 512, "break_fraction": 0.0},
     "Draws the parsed scene graph on the CPU: every pair comes with exact ground truth."),
    ("Scene renderer, 10% broken", {"width": 512, "height": 512, "break_fraction": 0.1},
     "Breaks one relation in ten on purpose (recorded), to exercise quality control."),
]


def generators_ensure_demo(*, created_by=None) -> list[Generator]:
    """The embedded default's generators: two scene renderers, so the whole pipeline runs without a GPU."""
    generators = []
    for name, settings, description in DEMO_GENERATORS:
        generator = Generator.objects.filter(name=name).first() or generator_create(
            name=name, backend=Backend.SCENE_RENDERER, settings=settings, description=description,
            created_by=created_by)
        generators.append(generator)
    return generators


# --- Images -------------------------------------------------------------------------------------------------


def encode_image(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "webp":
        image.save(buffer, format="WEBP", lossless=True, method=0)
    else:
        image.save(buffer, format="PNG", compress_level=1)  # fast: PNG's size gain at 6+ costs 5x the time
    return buffer.getvalue()


def encode_thumbnail(image: Image.Image) -> bytes:
    thumb = image.convert("RGB")
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
    buffer = io.BytesIO()
    thumb.save(buffer, format="WEBP", quality=80, method=0)
    return buffer.getvalue()


def pair_file_names(*, generator_id: int, perturbed_id: int, seed: int, fmt: str) -> dict[str, str]:
    """Storage names for a pair's four files. Deterministic (a resumed job overwrites its own half-written
    files) and opaque: a keyed hash, so nobody can tell the perfect prompt's image from a name or URL."""
    folder = f"pairs/g{generator_id}/{perturbed_id % 1000:03d}"
    names = {}
    for role in ROLES:
        token = hmac.new(django_settings.SECRET_KEY.encode(), f"{generator_id}:{perturbed_id}:{seed}:{role}".encode(),
                         hashlib.sha256).hexdigest()[:20]
        names[f"{role}_image"] = f"{folder}/{perturbed_id}-{seed}-{token}.{fmt}"
        names[f"{role}_thumb"] = f"{folder}/{perturbed_id}-{seed}-{token}-t.webp"
    return names


def _write(name: str, content: bytes) -> None:
    # Storage.save picks a new name when one is taken; a resumed job must replace its own file instead.
    if default_storage.exists(name):
        default_storage.delete(name)
    saved = default_storage.save(name, ContentFile(content))
    if saved != name:  # pragma: no cover - only if another writer raced us to the same name
        raise RuntimeError(f"storage saved {name!r} as {saved!r}")


def _write_all(files: Sequence[tuple[str, Image.Image, bool]], fmt: str) -> None:
    """Encodes and writes (name, image, is_thumbnail) in threads: Pillow's encoders and file writes release the
    GIL, and encoding is most of what storing a pair costs once the images exist."""

    def write(task: tuple[str, Image.Image, bool]) -> None:
        name, image, thumbnail = task
        _write(name, encode_thumbnail(image) if thumbnail else encode_image(image, fmt))

    with ThreadPoolExecutor(max_workers=ENCODE_THREADS) as pool:
        list(pool.map(write, files))  # list(): re-raises the first error


def _delete_quietly(names: Iterable[str]) -> None:
    for name in names:
        try:
            default_storage.delete(name)
        except Exception:  # cleanup must not hide the error that caused it
            logger.exception("could not delete %s", name)


# --- Pairs --------------------------------------------------------------------------------------------------


@dataclass
class GeneratedPair:
    """What the worker hands over for one (perturbed prompt, seed): both images and the pair's metadata."""

    perturbed_id: int
    prompt_id: int
    n_edits: int
    seed: int
    winner: Image.Image
    loser: Image.Image
    meta: dict = field(default_factory=dict)
    ground_truth_ok: bool | None = None


def pairs_existing(*, generator: Generator, perturbed_ids: Sequence[int], seeds: Sequence[int]) -> set[tuple]:
    """(perturbed id, seed) of the pairs this generator already made among these: a resumed job skips them."""
    return set(Pair.objects.filter(generator=generator, perturbed_id__in=list(perturbed_ids), seed__in=list(seeds))
               .values_list("perturbed_id", "seed"))


def pairs_store(*, job, generator: Generator, pairs: Sequence[GeneratedPair]) -> int:
    """Writes the images and inserts the pairs; returns how many new pairs were stored. A pair that exists
    already (another job made it) is skipped by the unique constraint; its files are the ones written here,
    under the same deterministic names."""
    fmt = generator.image_format
    rows, files = [], []
    try:
        for item in pairs:
            names = pair_file_names(generator_id=generator.pk, perturbed_id=item.perturbed_id, seed=item.seed,
                                    fmt=fmt)
            for role, image in (("winner", item.winner), ("loser", item.loser)):
                files.append((names[f"{role}_image"], image, False))
                files.append((names[f"{role}_thumb"], image, True))
            rows.append(Pair(
                generator=generator, prompt_id=item.prompt_id, perturbed_id=item.perturbed_id, seed=item.seed,
                job=job, n_edits=item.n_edits, width=item.winner.width, height=item.winner.height, meta=item.meta,
                ground_truth_ok=item.ground_truth_ok, **names,
            ))
        _write_all(files, fmt)
        ids = [row.perturbed_id for row in rows]
        with transaction.atomic():
            before = Pair.objects.filter(generator=generator, perturbed_id__in=ids).count()
            Pair.objects.bulk_create(rows, ignore_conflicts=True)
            after = Pair.objects.filter(generator=generator, perturbed_id__in=ids).count()
    except BaseException:
        # Nothing of this batch is stored (the insert is one statement), so none of its files may stay.
        _delete_quietly(name for name, _, _ in files)
        raise
    return after - before


def generation_failures_record(*, job, generator: Generator, failures: Sequence[tuple], error: str) -> int:
    """failures: (perturbed prompt, seed) of a batch that raised. Stored once per job even if retried."""
    rows = [GenerationFailure(job=job, generator=generator, perturbed_id=perturbed.pk, seed=seed,
                              prompt_text=perturbed.prompt.text, perturbed_text=perturbed.text, error=error[-5000:])
            for perturbed, seed in failures]
    GenerationFailure.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def pair_files(pair: Pair) -> list[str]:
    return [pair.winner_image, pair.loser_image, pair.winner_thumb, pair.loser_thumb]
