"""What every htmx page needs to know about a request: whether it asks for a block or the whole page, and how
to answer a successful POST."""

from django.shortcuts import redirect
from django_htmx.http import HttpResponseClientRedirect


def partial(request) -> bool:
    """An htmx request for a block of the page; a history restore (the Back button) needs the whole page."""
    return bool(request.htmx) and not request.htmx.history_restore_request


def done(request, url: str):
    """After a successful POST: htmx navigates the whole page (HX-Redirect), a plain form gets a 302."""
    return HttpResponseClientRedirect(url) if partial(request) else redirect(url)
