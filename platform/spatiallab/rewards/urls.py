from django.urls import path

from spatiallab.rewards import views, views_scoring

# Mounted at dashboard/reward-runs/.
urlpatterns = [
    path("", views.run_list, name="reward-run-list"),
    path("<int:pk>/", views.run_detail, name="reward-run-detail"),
    path("<int:pk>/cancel/", views.run_control, {"action": "cancel"}, name="reward-run-cancel"),
    path("<int:pk>/resume/", views.run_control, {"action": "resume"}, name="reward-run-resume"),
    path("<int:pk>/evaluate/", views.run_evaluate, name="reward-run-evaluate"),
    path("<int:pk>/evaluations/", views.run_evaluations, name="reward-run-evaluations"),
    path("evaluations/", views.evaluation_compare, name="reward-evaluation-compare"),
    path("order-queue/<int:queue_pk>/", views.queue_order, name="reward-queue-order"),
    path("score-pairs/", views.score_gallery_pairs, name="reward-score-pairs"),
    path("score/", views_scoring.score, name="reward-score"),
    path("score/<int:pk>/", views_scoring.score_detail, name="reward-score-detail"),
]
