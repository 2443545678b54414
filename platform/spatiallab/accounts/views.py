from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_POST
from django_ratelimit.decorators import ratelimit
from rest_framework.authtoken.models import Token

from spatiallab.accounts.services import token_rotate


def _login_username(group, request):
    return (request.POST.get("username") or "").strip().lower()


@method_decorator(ratelimit(key="ip", rate=lambda g, r: settings.LOGIN_RATE, method="POST", block=False), "post")
@method_decorator(
    ratelimit(key=_login_username, rate=lambda g, r: settings.LOGIN_RATE, method="POST", block=False), "post"
)
class LoginView(auth_views.LoginView):
    """Django's login view, throttled per client IP and per username through the shared cache."""

    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        if getattr(request, "limited", False):
            response = render(
                request,
                self.template_name,
                {"form": self.get_form(), "throttled": True},
                status=429,
            )
            response["Retry-After"] = "60"
            return response
        return super().post(request, *args, **kwargs)


@login_required
def api_token(request):
    token = Token.objects.filter(user=request.user).first()
    return render(request, "accounts/token.html", {"token": token})


@login_required
@require_POST
def api_token_rotate(request) -> HttpResponse:
    token_rotate(user=request.user)
    return redirect("api-token")
