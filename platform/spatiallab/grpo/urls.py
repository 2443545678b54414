from django.urls import path

from spatiallab.grpo import views

# Mounted at dashboard/grpo-runs/.
urlpatterns = [
    path("", views.run_list, name="grpo-run-list"),
    path("<int:pk>/", views.run_detail, name="grpo-run-detail"),
    path("<int:pk>/cancel/", views.run_control, {"action": "cancel"}, name="grpo-run-cancel"),
    path("<int:pk>/resume/", views.run_control, {"action": "resume"}, name="grpo-run-resume"),
    path("checkpoints/<int:pk>/register/", views.checkpoint_register, name="grpo-checkpoint-register"),
    path("samples/<int:pk>/image/", views.sample_image, name="grpo-sample-image"),
]
