from django.urls import path

from spatiallab.generation import views

# Mounted at dashboard/pairs/.
urlpatterns = [
    path("", views.pair_gallery, name="pair-gallery"),
    path("<int:pk>/", views.pair_detail, name="pair-detail"),
    path("failures/", views.generation_failures, name="generation-failures"),
    path("<int:pk>/image/<str:which>/", views.pair_image, name="pair-image"),
    path("launch/<int:prompt_set_pk>/", views.generation_launch, name="pair-generate"),
    path("launch/<int:prompt_set_pk>/runs/", views.generation_runs, name="pair-generation-runs"),
]

# Mounted at dashboard/generators/ (spatiallab/urls.py: include(generator_urlpatterns)).
generator_urlpatterns = [
    path("", views.generator_list, name="generator-list"),
    path("register/", views.generator_register, name="generator-register"),
    path("defaults/", views.generator_defaults, name="generator-defaults"),
    path("<int:pk>/", views.generator_edit, name="generator-edit"),
    path("<int:pk>/toggle/", views.generator_toggle, name="generator-toggle"),
]
