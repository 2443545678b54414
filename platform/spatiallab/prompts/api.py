from django.db.models import Count
from rest_framework import serializers, viewsets

from spatiallab.accounts.roles import IsResearcher
from spatiallab.prompts.models import PromptSet


class PromptSetSerializer(serializers.ModelSerializer):
    prompt_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = PromptSet
        fields = ["id", "name", "description", "prompt_count", "created_at"]


class PromptSetViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = PromptSetSerializer
    permission_classes = [IsResearcher]

    def get_queryset(self):
        return PromptSet.objects.annotate(prompt_count=Count("prompts"))
