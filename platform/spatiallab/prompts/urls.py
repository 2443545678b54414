from django.urls import path

from spatiallab.prompts import views

# Mounted at dashboard/prompt-sets/.
urlpatterns = [
    path("", views.prompt_set_list, name="prompt-set-list"),
    path("upload/", views.prompt_set_upload, name="prompt-set-upload"),
    path("generate/", views.prompt_set_generate_view, name="prompt-set-generate"),
    path("<int:pk>/", views.prompt_set_detail, name="prompt-set-detail"),
    path("<int:pk>/prompts/", views.prompt_search, name="prompt-set-search"),
    path("<int:pk>/preview/", views.perturbation_preview, name="prompt-set-preview"),
    path("<int:pk>/perturb/", views.perturbation_run_launch, name="prompt-set-perturb"),
    path("<int:pk>/runs/", views.perturbation_runs_panel, name="prompt-set-runs"),
    path("<int:pk>/perturbed/", views.perturbed_prompt_list, name="prompt-set-perturbed"),
]

# Mounted at dashboard/perturbation-rules/ (spatiallab/urls.py: include(rule_urlpatterns)).
rule_urlpatterns = [
    path("", views.rule_list, name="perturbation-rule-list"),
    path("create/", views.rule_create, name="perturbation-rule-create"),
    path("<int:pk>/toggle/", views.rule_toggle, name="perturbation-rule-toggle"),
]
