"""Filters of the verification endpoints (django-filter)."""

import django_filters

from spatiallab.verification.models import ItemStatus, QueueItem, QueueStatus, VerificationQueue


class QueueFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=QueueStatus.choices)

    class Meta:
        model = VerificationQueue
        fields = ["status"]


class QueueItemFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ItemStatus.choices)
    is_gold = django_filters.BooleanFilter(label="Gold pairs (known answer) or regular ones")

    class Meta:
        model = QueueItem
        fields = ["status", "is_gold"]
