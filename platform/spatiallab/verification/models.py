"""Verification queues: items (a pair in a queue), assignments (one annotator's lease and then verdict on an
item) and adjudications.

The counters on an item are what make assignment safe under concurrency without scanning verdicts: `taken`
counts the item's live leases plus its answers (never above the queue's overlap for regular items) and `open`
is `taken < overlap`, kept in step by the same statements (services.py), so that "next item" is one indexed
probe of open items.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class QueueStatus(models.TextChoices):
    BUILDING = "building", "Building (a job is adding its items)"
    ACTIVE = "active", "Active"
    PAUSED = "paused", "Paused"
    CLOSED = "closed", "Closed"


class Choice(models.TextChoices):
    """What the annotator clicked, by position on their screen."""

    LEFT = "left", "Only the left image follows the prompt"
    RIGHT = "right", "Only the right image follows the prompt"
    BOTH = "both", "Both follow"
    NEITHER = "neither", "Neither follows"
    UNSURE = "unsure", "Can't tell"


class Answer(models.TextChoices):
    """The same answer in terms of the pair: `winner` means the perfect prompt's image follows and the other
    does not (the pair is a valid preference pair); `loser` means only the perturbed prompt's image follows."""

    WINNER = "winner", "Only the perfect prompt's image follows"
    LOSER = "loser", "Only the perturbed prompt's image follows"
    BOTH = "both", "Both follow"
    NEITHER = "neither", "Neither follows"
    UNSURE = "unsure", "Can't tell"


ANSWER_CODES = {answer.value: code for code, answer in enumerate(Answer)}  # for agreement statistics


class ItemStatus(models.TextChoices):
    PENDING = "pending", "Waiting for verdicts"
    VERIFIED = "verified", "Verified"
    REJECTED = "rejected", "Rejected"
    DISPUTED = "disputed", "Disputed (needs adjudication)"
    FLAGGED = "flagged", "Flagged as broken"


class AssignmentStatus(models.TextChoices):
    LEASED = "leased", "Leased"
    ANSWERED = "answered", "Answered"
    SKIPPED = "skipped", "Skipped"


class QueueOrder(models.TextChoices):
    RANDOM = "", "Random (the order items were drawn in)"
    SIGMA = "sigma", "Most uncertain first (largest sigma of the model's margin)"
    MARGIN = "margin", "Closest call first (smallest score margin between the two images)"


class VerificationQueue(models.Model):
    name = models.CharField(max_length=200, unique=True)
    instructions = models.TextField(blank=True, help_text="Shown to annotators above every item.")
    overlap = models.PositiveSmallIntegerField(default=3, help_text="Annotators who answer each pair.")
    quorum = models.PositiveSmallIntegerField(
        default=2, help_text="Matching answers needed to decide a pair; fewer makes it disputed.")
    lease_minutes = models.PositiveSmallIntegerField(
        default=10, help_text="An item not answered within this time goes back to the queue.")
    gold_share = models.FloatField(default=0.0, help_text="Share of served items that are gold pairs.")
    priority = models.IntegerField(default=0, help_text="Higher comes first on the annotator's list.")
    status = models.CharField(max_length=10, choices=QueueStatus.choices, default=QueueStatus.ACTIVE)
    # Empty: every annotator may work on the queue.
    annotators = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="verification_queues")
    # The pair selection the queue was built from (job, generator, rules, n_edits, prompt set), for provenance.
    selection = models.JSONField(default=dict, blank=True)
    # The job that added the items of a large queue (services.queue_create).
    build_job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Serving order by a reward checkpoint's uncertainty (an order_queue job rewrites the open items' ranks).
    order_by = models.CharField(max_length=10, choices=QueueOrder.choices, default=QueueOrder.RANDOM, blank=True)
    order_checkpoint = models.ForeignKey("rewards.RewardCheckpoint", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="+")
    order_job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-priority", "-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1) & Q(overlap__lte=20), name="queue_overlap_range"),
            models.CheckConstraint(condition=Q(quorum__gte=1) & Q(quorum__lte=models.F("overlap")),
                                   name="queue_quorum_range"),
            models.CheckConstraint(condition=Q(lease_minutes__gte=1), name="queue_lease_positive"),
            models.CheckConstraint(condition=Q(gold_share__gte=0) & Q(gold_share__lte=1), name="queue_gold_share"),
        ]

    def __str__(self) -> str:
        return self.name


class QueueItem(models.Model):
    queue = models.ForeignKey(VerificationQueue, on_delete=models.CASCADE, related_name="items")
    pair = models.ForeignKey("generation.Pair", on_delete=models.CASCADE, related_name="queue_items")
    # Serving order: a random number drawn when the item is added, so "next item" is an index range scan and
    # never ORDER BY random().
    rank = models.IntegerField()
    is_gold = models.BooleanField(default=False)
    # For gold items: whether the pair is a valid preference pair (the perfect prompt's image follows and the
    # other does not). An answer is correct when it says the same.
    gold_verified = models.BooleanField(null=True, blank=True)
    taken = models.PositiveSmallIntegerField(default=0, help_text="Live leases plus answers.")
    done = models.PositiveSmallIntegerField(default=0, help_text="Answers.")
    open = models.BooleanField(default=True, help_text="taken < overlap and not withdrawn.")
    status = models.CharField(max_length=10, choices=ItemStatus.choices, default=ItemStatus.PENDING)
    flags = models.PositiveSmallIntegerField(default=0, help_text="Broken-image reports.")
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["queue_id", "rank", "id"]
        constraints = [
            models.UniqueConstraint(fields=["queue", "pair"], name="item_pair_once_per_queue"),
            models.CheckConstraint(condition=Q(done__lte=models.F("taken")) | Q(is_gold=True),
                                   name="item_done_within_taken"),
        ]
        indexes = [
            # "Next item": the open regular items of a queue in rank order, and its gold items.
            models.Index(fields=["queue", "rank"], name="item_open_rank_idx",
                         condition=Q(open=True, is_gold=False)),
            models.Index(fields=["queue", "rank"], name="item_gold_rank_idx", condition=Q(is_gold=True)),
            models.Index(fields=["queue", "status"], name="item_queue_status_idx"),
            models.Index(fields=["pair"], name="item_pair_idx"),
        ]

    def __str__(self) -> str:
        return f"item {self.pk} of queue {self.queue_id} (pair {self.pair_id})"


class Assignment(models.Model):
    """One annotator's turn on one item: a lease while they look at it, then their verdict (or skip).

    One row per (item, annotator): an annotator never answers an item twice. Expired leases are deleted (the
    item goes back to the queue). The left/right order is drawn when the lease is made and kept with the verdict.
    """

    queue = models.ForeignKey(VerificationQueue, on_delete=models.CASCADE, related_name="assignments")
    item = models.ForeignKey(QueueItem, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                  related_name="verification_assignments")
    is_gold = models.BooleanField(default=False)
    winner_left = models.BooleanField(help_text="The perfect prompt's image was shown on the left.")
    status = models.CharField(max_length=10, choices=AssignmentStatus.choices, default=AssignmentStatus.LEASED)
    leased_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    choice = models.CharField(max_length=10, choices=Choice.choices, blank=True)
    answer = models.CharField(max_length=10, choices=Answer.choices, blank=True)
    seconds = models.FloatField(null=True, blank=True, help_text="Time the annotator spent on the item.")
    skip_reason = models.CharField(max_length=200, blank=True)
    # The client's idempotency key: a retried submission with the same key stores nothing new.
    client_key = models.CharField(max_length=64, null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["item", "annotator"], name="assignment_once_per_annotator"),
            # At most one live lease per annotator and queue: asking twice returns the same item.
            models.UniqueConstraint(fields=["annotator", "queue"], condition=Q(status="leased"),
                                    name="assignment_one_lease_per_queue"),
            models.UniqueConstraint(fields=["annotator", "client_key"], condition=Q(client_key__isnull=False),
                                    name="assignment_client_key_once"),
        ]
        indexes = [
            models.Index(fields=["expires_at"], name="assignment_lease_expiry_idx",
                         condition=Q(status="leased")),
            models.Index(fields=["queue", "annotator", "status"], name="assignment_queue_user_idx"),
            models.Index(fields=["queue", "answered_at"], name="assignment_queue_time_idx"),
            models.Index(fields=["annotator", "-answered_at"], name="assignment_recent_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.annotator_id} on item {self.item_id}: {self.status}"


class Adjudication(models.Model):
    """A researcher's decision on a disputed item, made with all its verdicts in view."""

    item = models.OneToOneField(QueueItem, on_delete=models.CASCADE, related_name="adjudication")
    status = models.CharField(max_length=10, choices=[(ItemStatus.VERIFIED, "Verified"),
                                                      (ItemStatus.REJECTED, "Rejected")])
    note = models.TextField(blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"item {self.item_id}: {self.status}"
