from django.urls import path

from spatiallab.datasets import views

# Mounted at dashboard/datasets/: the researcher's dataset version pages.
urlpatterns = [
    path("", views.version_list, name="dataset-version-list"),
    path("table/", views.version_table, name="dataset-version-table"),
    path("new/", views.version_new, name="dataset-version-create"),
    path("count/", views.version_candidate_count, name="dataset-version-count"),
    path("<int:pk>/", views.version_detail, name="dataset-version-detail"),
    path("<int:pk>/build/", views.version_build_block, name="dataset-version-build"),
    path("<int:pk>/download/", views.version_download_cell, name="dataset-version-download-cell"),
    path("<int:pk>/export/", views.version_export, name="dataset-version-export"),
]
