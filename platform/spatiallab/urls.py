from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from spatiallab.core import views as core_views
from spatiallab.generation.urls import generator_urlpatterns
from spatiallab.prompts.urls import rule_urlpatterns

api_v1 = [
    path("", include("spatiallab.accounts.api_urls")),
    path("", include("spatiallab.jobs.api_urls")),
    path("", include("spatiallab.prompts.api_urls")),
    path("", include("spatiallab.generation.api_urls")),
    path("", include("spatiallab.verification.api_urls")),
    path("", include("spatiallab.datasets.api_urls")),
    path("", include("spatiallab.rewards.api_urls")),
    path("", include("spatiallab.grpo.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
]

urlpatterns = [
    path("", core_views.home, name="home"),
    path("healthz", core_views.healthz, name="healthz"),
    path("", include("spatiallab.accounts.urls")),
    path("annotate/", include("spatiallab.verification.annotate_urls")),
    path("dashboard/", include("spatiallab.jobs.urls")),
    path("dashboard/prompt-sets/", include("spatiallab.prompts.urls")),
    path("dashboard/perturbation-rules/", include(rule_urlpatterns)),
    path("dashboard/pairs/", include("spatiallab.generation.urls")),
    path("dashboard/generators/", include(generator_urlpatterns)),
    path("dashboard/queues/", include("spatiallab.verification.urls")),
    path("dashboard/datasets/", include("spatiallab.datasets.urls")),
    path("dashboard/reward-runs/", include("spatiallab.rewards.urls")),
    path("dashboard/grpo-runs/", include("spatiallab.grpo.urls")),
    path("api/v1/", include(api_v1)),
    path("admin/", admin.site.urls),
]

handler403 = "spatiallab.core.views.permission_denied"
