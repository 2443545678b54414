from django.urls import path

from spatiallab.jobs import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("jobs/table/", views.jobs_table, name="jobs-table"),
    path("jobs/launch/demo/", views.job_launch_demo, name="job-launch-demo"),
    path("jobs/<int:pk>/", views.job_detail, name="job-detail"),
    path("jobs/<int:pk>/cancel/", views.job_cancel_view, name="job-cancel"),
]
