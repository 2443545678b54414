"""Scoring with a reward checkpoint: uploaded images (one prompt each), or best-of-n (n samples of a generator for
one prompt, re-ranked by score). A request is validated here, stored with its GPU job (score_images) in one
transaction, and finished by the worker's handler, which stores the scores ranked best first.

Bad input raises a ValidationError naming the field, for a list element with its index (`images[3]`,
`prompts[3]`); nothing is stored then, neither rows nor files."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.db import transaction
from PIL import Image, UnidentifiedImageError

from ml.spatial.parser import parse
from spatiallab.generation.models import Backend, Generator
from spatiallab.jobs.models import JobStatus
from spatiallab.jobs.services import job_create
from spatiallab.rewards.models import RewardCheckpoint, ScoreRequest, ScoreRequestKind

MAX_IMAGES = 64
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_SIDE = 4096
MAX_PROMPT_CHARS = 2000
MIN_N, MAX_N = 2, 64
MAX_SEED = 2**31 - 1  # the generation jobs' range
# PIL's format name -> the stored file's extension. Other formats PIL reads (icons, PPM, ...) are refused: the
# image is served back to browsers.
IMAGE_FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "gif": "image/gif",
                 "bmp": "image/bmp"}
CHECKPOINT_FILE = "reward_model.json"


def storage_folder(request_id: int) -> str:
    return f"score-requests/{request_id}"


def sample_name(request_id: int, k: int) -> str:
    """Where a best-of-n job stores its k-th sample (k from 0; seed = request seed + k)."""
    return f"{storage_folder(request_id)}/sample-{k}.png"


# --- Validation -----------------------------------------------------------------------------------------------


def _checkpoint_errors(checkpoint: RewardCheckpoint | None) -> list[str]:
    if checkpoint is None:
        return ["Choose a reward checkpoint."]
    if not (Path(checkpoint.path) / CHECKPOINT_FILE).is_file():
        return [f"Checkpoint {checkpoint.pk} has no {CHECKPOINT_FILE} at {checkpoint.path!r} (pruned or moved)."]
    return []


def _prompt_errors(prompt: Any) -> list[str]:
    if not isinstance(prompt, str) or not prompt.strip():
        return ["Give a non-empty prompt."]
    if len(prompt.strip()) > MAX_PROMPT_CHARS:
        return [f"At most {MAX_PROMPT_CHARS} characters (this one has {len(prompt.strip())})."]
    return []


def _image_check(handle: IO[bytes], size: int | None) -> tuple[str, list[str]]:
    """(extension, errors) of one uploaded file: a readable image of a served format within the size limits."""
    if size is not None and size > MAX_IMAGE_BYTES:
        return "", [f"The file is {size} bytes; at most {MAX_IMAGE_BYTES} ({MAX_IMAGE_BYTES // 2**20} MB)."]
    try:
        handle.seek(0)
        with Image.open(handle) as image:
            image_format, (width, height) = image.format, image.size
            # The size is read from the header, before any pixel is decoded: a decompression bomb stops here.
            if width > MAX_IMAGE_SIDE or height > MAX_IMAGE_SIDE:
                return "", [f"The image is {width}x{height}; at most {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}."]
            image.verify()
        # verify() checks the structure (chunk checksums) but not every format's pixel data: decode it too, so a
        # truncated file is refused here and not in the worker.
        handle.seek(0)
        with Image.open(handle) as image:
            image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        return "", [f"Not a readable image ({exc.__class__.__name__}: {exc})."[:300]]
    finally:
        handle.seek(0)
    if image_format not in IMAGE_FORMATS:
        return "", [f"{image_format} images are not accepted; send {', '.join(IMAGE_FORMATS)}."]
    return IMAGE_FORMATS[image_format], []


@dataclass
class UploadedImage:
    """One file of an upload with its prompt. `file` is a Django UploadedFile (or any File with name and size)."""

    file: Any
    prompt: str


def pair_prompts(files: Sequence[Any], prompts: Sequence[str] | None, prompt: str | None) -> list[UploadedImage]:
    """The API's and the form's two ways of giving prompts: one per image (`prompts`, in file order), or one for
    every image (`prompt`)."""
    prompts = list(prompts or [])
    if prompts and prompt not in (None, ""):
        raise ValidationError({"prompt": ["Give either one prompt per image (prompts) or one prompt for all."]})
    if prompts:
        if len(prompts) != len(files):
            raise ValidationError({"prompts": [f"Give one prompt per image: {len(files)} images, "
                                               f"{len(prompts)} prompts."]})
        return [UploadedImage(file, text) for file, text in zip(files, prompts, strict=True)]
    if prompt in (None, ""):
        raise ValidationError({"prompts": ["Give one prompt per image (prompts), or one prompt for all (prompt)."]})
    return [UploadedImage(file, prompt) for file in files]


# --- Creating requests ----------------------------------------------------------------------------------------


def score_request_upload(*, checkpoint: RewardCheckpoint | None, files_with_prompts: Sequence[UploadedImage],
                         created_by=None) -> ScoreRequest:
    """Scores uploaded images: validates everything first, then stores the files under
    score-requests/<id>/<index>.<ext>, the request and its job, in one transaction (a failure on the way removes
    the files again)."""
    errors: dict[str, list[str]] = {}
    if checkpoint_errors := _checkpoint_errors(checkpoint):
        errors["checkpoint"] = checkpoint_errors
    items = list(files_with_prompts)
    if not 1 <= len(items) <= MAX_IMAGES:
        errors["images"] = [f"Send between 1 and {MAX_IMAGES} images (got {len(items)})."]
    extensions = []
    for index, item in enumerate(items[:MAX_IMAGES]):
        extension, image_errors = _image_check(item.file, getattr(item.file, "size", None))
        extensions.append(extension)
        if image_errors:
            errors[f"images[{index}]"] = image_errors
        if prompt_errors := _prompt_errors(item.prompt):
            errors[f"prompts[{index}]"] = prompt_errors
    if errors:
        raise ValidationError(errors)

    saved: list[str] = []
    try:
        with transaction.atomic():
            request = ScoreRequest.objects.create(kind=ScoreRequestKind.UPLOAD, checkpoint=checkpoint,
                                                  checkpoint_path=checkpoint.path, created_by=created_by)
            images = []
            for index, (item, extension) in enumerate(zip(items, extensions, strict=True)):
                target = f"{storage_folder(request.pk)}/{index}.{extension}"
                item.file.seek(0)
                name = default_storage.save(target, item.file)
                saved.append(name)
                images.append({"name": name, "prompt": item.prompt.strip(),
                               "filename": Path(getattr(item.file, "name", "") or "").name[:200]})
            request.images = images
            request.job = job_create(kind="score_images", params={"request": request.pk}, created_by=created_by)
            request.save(update_fields=["images", "job"])
    except BaseException:
        for name in saved:
            default_storage.delete(name)
        raise
    return request


def score_request_best_of_n(*, checkpoint: RewardCheckpoint | None, generator: Generator | None, prompt: str,
                            n: int, seed: int = 0, created_by=None) -> ScoreRequest:
    """Best-of-n: the generator draws n samples of `prompt` (seeds seed, seed + 1, ...) and the checkpoint ranks
    them. Validated first (nothing stored on an error), then the request and its job in one transaction."""
    errors: dict[str, list[str]] = {}
    if checkpoint_errors := _checkpoint_errors(checkpoint):
        errors["checkpoint"] = checkpoint_errors
    if generator is None:
        errors["generator"] = ["Choose a generator."]
    elif not generator.enabled:
        errors["generator"] = [f"Generator {generator.name!r} is disabled."]
    if prompt_errors := _prompt_errors(prompt):
        errors["prompt"] = prompt_errors
    elif (generator is not None and generator.backend == Backend.SCENE_RENDERER
          and not parse(" ".join(prompt.split())).objects):
        # The renderer draws the scene graph the platform's parser reads from the text: with no object there is
        # nothing to draw.
        errors["prompt"] = ["The scene renderer draws the objects a prompt names; the parser found none in this "
                            "prompt."]
    if not isinstance(n, int) or isinstance(n, bool) or not MIN_N <= n <= MAX_N:
        errors["n"] = [f"Must be an integer between {MIN_N} and {MAX_N}."]
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED - MAX_N:
        errors["seed"] = [f"Must be an integer between 0 and {MAX_SEED - MAX_N}."]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        request = ScoreRequest.objects.create(
            kind=ScoreRequestKind.BEST_OF_N, checkpoint=checkpoint, checkpoint_path=checkpoint.path,
            generator=generator, prompt=" ".join(prompt.split()), n=n, seed=seed, created_by=created_by)
        request.job = job_create(kind="score_images", params={"request": request.pk}, created_by=created_by)
        request.save(update_fields=["job"])
    return request


# --- What the worker reports ----------------------------------------------------------------------------------


def score_request_set_status(*, request_id: int, status: str) -> None:
    ScoreRequest.objects.filter(pk=request_id).update(status=status)


def ranked(results: Sequence[dict]) -> list[dict]:
    """Best first: by mu, highest first (ties keep the input order); rank 1 is the best."""
    order = sorted(results, key=lambda row: -row["mu"])
    return [{**row, "rank": rank} for rank, row in enumerate(order, start=1)]


def score_request_finish(*, request_id: int, results: Sequence[dict]) -> ScoreRequest:
    """Stores the scores ({index, prompt, image, seed, mu, sigma}) ranked best first; the request succeeded."""
    request = ScoreRequest.objects.get(pk=request_id)
    request.results = ranked(results)
    request.status = JobStatus.SUCCEEDED
    request.save(update_fields=["results", "status"])
    return request


def jobs_ended_mark_score_requests(sender, job_ids: list[int], status: str, **kwargs) -> None:
    """Receiver of jobs.services.job_ended: a request whose job failed or was cancelled says so."""
    ScoreRequest.objects.filter(job_id__in=job_ids).update(status=status)
