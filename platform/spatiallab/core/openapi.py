"""The API's OpenAPI schema: drf-spectacular's AutoSchema plus the error answers every endpoint gives.

drf-spectacular documents an operation's success only. Clients also get a 400 naming the fields where an
operation takes a body, filters or query parameters, and a 404 where its path names an object that is missing
or not visible to the caller; the schema says so, so that generated clients and tests/test_api_schemathesis.py
can rely on it. An explicit `@extend_schema(responses=...)` entry for one of these codes wins.
"""

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField(required=False, help_text="A stable code, where the endpoint documents one.")


FIELD_ERRORS = OpenApiResponse(OpenApiTypes.OBJECT, description="Bad input: each field (or non_field_errors) "
                                                                "with its errors; nothing was stored.")
NOT_FOUND = OpenApiResponse(ErrorDetailSerializer, description="Not found, or not visible to you.")


class ApiSchema(AutoSchema):
    def _resolve_path_parameters(self, variables):
        parameters = super()._resolve_path_parameters(variables)
        for parameter in parameters:
            # Django's int converter matches digits only: "-1" reaches no view, only Django's HTML 404.
            if parameter["schema"].get("type") == "integer" and f"<int:{parameter['name']}>" in self.path_regex:
                parameter["schema"] = {**parameter["schema"], "minimum": 0}
        return parameters

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code, response in self._error_responses().items():
            if code not in responses:
                responses[code] = self._get_response_for_code(response, code, direction=direction)
        return responses

    def _error_responses(self) -> dict[str, OpenApiResponse]:
        errors = {}
        takes_body = self.method in ("POST", "PUT", "PATCH") and self.get_request_serializer() is not None
        takes_query = self._get_filter_parameters() or any(
            isinstance(parameter, OpenApiParameter) and parameter.location == OpenApiParameter.QUERY
            for parameter in self.get_override_parameters())
        if takes_body or takes_query:
            errors["400"] = FIELD_ERRORS
        if "{" in self.path:
            errors["404"] = NOT_FOUND
        return errors
