from django.urls import path

from spatiallab.verification import views_annotate as views

# The annotator's pages (views_annotate.py).
urlpatterns = [
    path("", views.queue_list, name="annotate"),
    path("<int:queue_id>/", views.queue_work, name="annotate-queue"),
    path("<int:queue_id>/answer/", views.answer, name="annotate-answer"),
    path("<int:queue_id>/skip/", views.skip, name="annotate-skip"),
    path("<int:queue_id>/undo/", views.undo, name="annotate-undo"),
    path("assignments/<int:assignment_id>/image/<str:side>/", views.assignment_image, name="annotate-image"),
]
