from django.urls import path

from spatiallab.core import views as core_views

# The annotator's pages (views_annotate.py replaces this placeholder).
urlpatterns = [path("", core_views.annotate, name="annotate")]
