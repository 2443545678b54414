from django.urls import path

from spatiallab.core import views as core_views

# Researcher pages for queues (views.py); placeholder until they land.
urlpatterns = [path("", core_views.annotate, name="queue-list")]
