from django.conf import settings
from django.http import JsonResponse


class RequestSizeLimitMiddleware:
    """Refuses a request whose declared body exceeds MAX_REQUEST_BYTES before anything reads the body.

    Django's own DATA_UPLOAD_MAX_MEMORY_SIZE leaves file uploads out; this caps every body, uploads included.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse({"detail": "Content-Length header is not a number."}, status=400)
        limit = settings.MAX_REQUEST_BYTES
        if length > limit:
            return JsonResponse(
                {"detail": f"Request body is {length} bytes; the limit is {limit} bytes (MAX_REQUEST_BYTES)."},
                status=413,
            )
        return self.get_response(request)
