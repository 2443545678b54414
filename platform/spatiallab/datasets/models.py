"""Dataset versions (immutable, hashed snapshots of verified pairs) and their exports.

A version is made by a `build_dataset` job from saved selection criteria. While it builds, its entries are
written in pair-id order; when the job finishes it is frozen: the content hash over the canonical entry list
(canonical.py) is stored, and from then on nothing about it changes. That is enforced three times: the model
refuses to save a frozen version or an entry of one, the API and admin offer no way to change one, and database
triggers (migration 0002, PostgreSQL and SQLite alike) refuse any UPDATE or DELETE that would touch a frozen
version's entries or content, whatever code path issues it. A change is a new version with its parent recorded.

Each entry keeps its canonical JSON line: the JSONL export is those lines verbatim, so the export's SHA-256 is
the version's content hash, and every export recomputes it while writing.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class FrozenError(Exception):
    """Something tried to change a frozen dataset version."""


class VersionStatus(models.TextChoices):
    BUILDING = "building", "Building"
    FROZEN = "frozen", "Frozen"
    FAILED = "failed", "Failed"


class DatasetVersion(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="children")
    # What picks the entries (services.CRITERIA_FIELDS): queues, generators, rules, n_edits, min_agreement,
    # include_adjudicated. Saved as given, so a child version starts from its parent's.
    criteria = models.JSONField(default=dict)
    ratios = models.JSONField(default=dict, help_text="Share of prompts per split (train, validation, test).")
    split_salt = models.CharField(max_length=100, default="spatiallab",
                                  help_text="Part of the split hash: the same salt keeps a prompt in its split.")
    status = models.CharField(max_length=10, choices=VersionStatus.choices, default=VersionStatus.BUILDING)
    build_job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    content_hash = models.CharField(max_length=64, blank=True, help_text="SHA-256 over the canonical entries.")
    entry_count = models.PositiveIntegerField(default=0)
    # Counts by split, relation type, number of edits, generator and scene category; queue agreement.
    card = models.JSONField(default=dict, blank=True)
    readme = models.TextField(blank=True, help_text="The datasheet that travels with every export.")
    # Against the parent: counts of added, removed and relabelled pairs, with the first ids of each.
    diff = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    frozen_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(status="frozen") | (Q(frozen_at__isnull=False) & ~Q(content_hash="")),
                                   name="dataset_frozen_has_hash"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        if self.pk and DatasetVersion.objects.filter(pk=self.pk, status=VersionStatus.FROZEN).exists():
            raise FrozenError(f"dataset version {self.name!r} is frozen; make a new version instead")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if DatasetVersion.objects.filter(pk=self.pk, status=VersionStatus.FROZEN).exists():
            raise FrozenError(f"dataset version {self.name!r} is frozen and cannot be deleted")
        return super().delete(*args, **kwargs)

    @property
    def is_frozen(self) -> bool:
        return self.status == VersionStatus.FROZEN


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    VALIDATION = "validation", "Validation"
    TEST = "test", "Test"


class DatasetEntry(models.Model):
    """One verified pair in a version: its split and its canonical JSON line (what every export carries)."""

    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="entries")
    # PROTECT: a pair in a dataset version can no longer be deleted (nor its prompt, which cascades to it).
    pair = models.ForeignKey("generation.Pair", on_delete=models.PROTECT, related_name="dataset_entries")
    split = models.CharField(max_length=10, choices=Split.choices)
    line = models.TextField(help_text="The entry as canonical JSON (sorted keys, compact, UTF-8).")

    class Meta:
        ordering = ["version_id", "pair_id"]
        constraints = [
            # Also the export's index: a version's entries in pair-id order, and one split's.
            models.UniqueConstraint(fields=["version", "pair"], name="entry_pair_once_per_version"),
        ]
        indexes = [models.Index(fields=["version", "split", "pair"], name="entry_version_split_idx")]

    def __str__(self) -> str:
        return f"pair {self.pair_id} in version {self.version_id} ({self.split})"

    def save(self, *args, **kwargs):
        if DatasetVersion.objects.filter(pk=self.version_id, status=VersionStatus.FROZEN).exists():
            raise FrozenError("the entries of a frozen dataset version cannot change")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if DatasetVersion.objects.filter(pk=self.version_id, status=VersionStatus.FROZEN).exists():
            raise FrozenError("the entries of a frozen dataset version cannot change")
        return super().delete(*args, **kwargs)


class ExportFormat(models.TextChoices):
    JSONL = "jsonl", "JSONL (one pair per line, image paths)"
    PARQUET = "parquet", "Parquet with embedded images (Hugging Face datasets)"
    TAR = "tar", "Tar of the images with entries, README and checksum manifest"


class ExportStatus(models.TextChoices):
    BUILDING = "building", "Building"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class DatasetExport(models.Model):
    """A large export written by an `export_dataset` job through the storage API, offered for download with
    its checksum. Small exports are streamed by the REST endpoint instead and leave no row."""

    version = models.ForeignKey(DatasetVersion, on_delete=models.PROTECT, related_name="exports")
    format = models.CharField(max_length=10, choices=ExportFormat.choices)
    split = models.CharField(max_length=10, blank=True, choices=Split.choices, help_text="Empty: every split.")
    status = models.CharField(max_length=10, choices=ExportStatus.choices, default=ExportStatus.BUILDING)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    file = models.CharField(max_length=300, blank=True, help_text="Storage name of the written file.")
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    rows = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One live export per (version, format, split): asking again returns the existing one.
            models.UniqueConstraint(fields=["version", "format", "split"], condition=~Q(status="failed"),
                                    name="export_once_per_format"),
        ]

    def __str__(self) -> str:
        return f"{self.format} export of {self.version_id} ({self.status})"

    @property
    def filename(self) -> str:
        from spatiallab.datasets.exports import export_filename

        return export_filename(self.version, self.format, self.split)
