from django.urls import path

from spatiallab.prompts import views

urlpatterns = [path("", views.prompt_set_list, name="prompt-set-list")]
