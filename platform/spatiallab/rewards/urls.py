from django.urls import path

from spatiallab.rewards import views

# Mounted at dashboard/reward-runs/.
urlpatterns = [
    path("", views.run_list, name="reward-run-list"),
    path("<int:pk>/", views.run_detail, name="reward-run-detail"),
]
