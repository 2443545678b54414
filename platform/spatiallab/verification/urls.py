from django.urls import path

from spatiallab.verification import views

# Mounted at dashboard/queues/: the researcher's queue pages.
urlpatterns = [
    path("", views.queue_list, name="queue-list"),
    path("new/", views.queue_new, name="queue-create"),
    path("pair-count/", views.queue_pair_count, name="queue-pair-count"),
    path("<int:pk>/", views.queue_detail, name="queue-detail"),
    path("<int:pk>/progress/", views.queue_progress_block, name="queue-progress"),
    path("<int:pk>/edit/", views.queue_edit, name="queue-edit"),
    path("<int:pk>/status/", views.queue_set_status, name="queue-status"),
    path("<int:pk>/items/<int:item_pk>/restore/", views.queue_item_restore, name="queue-item-restore"),
    path("<int:pk>/adjudicate/", views.queue_adjudicate, name="queue-adjudicate"),
    path("<int:pk>/adjudicate/<int:item_pk>/", views.queue_adjudicate_item, name="queue-adjudicate-item"),
    path("<int:pk>/stats/", views.queue_statistics, name="queue-stats"),
]
