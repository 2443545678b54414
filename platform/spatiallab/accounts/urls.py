from django.contrib.auth import views as auth_views
from django.urls import path

from spatiallab.accounts import views

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/token/", views.api_token, name="api-token"),
    path("account/token/rotate/", views.api_token_rotate, name="api-token-rotate"),
]
