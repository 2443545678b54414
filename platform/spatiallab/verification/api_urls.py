from django.urls import path
from rest_framework.routers import SimpleRouter

from spatiallab.verification.api import AssignmentViewSet, ItemViewSet, QueueItemListView, QueueViewSet

router = SimpleRouter()
router.register("queues", QueueViewSet, basename="api-queue")
router.register("assignments", AssignmentViewSet, basename="api-assignment")
router.register("items", ItemViewSet, basename="api-item")
urlpatterns = [
    path("queues/<int:queue_pk>/items/", QueueItemListView.as_view(), name="api-queue-items"),
    *router.urls,
]
