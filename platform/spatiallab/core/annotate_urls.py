from django.urls import path

from spatiallab.core import views

urlpatterns = [path("", views.annotate, name="annotate")]
