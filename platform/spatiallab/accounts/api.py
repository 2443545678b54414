from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from spatiallab.accounts.roles import user_roles


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    roles = serializers.ListField(child=serializers.CharField())


class MeView(APIView):
    """Who the token belongs to, and the roles it carries."""


    @extend_schema(responses=MeSerializer)
    def get(self, request):
        data = {"username": request.user.get_username(), "roles": sorted(user_roles(request.user))}
        return Response(MeSerializer(data).data)
