from rest_framework.routers import SimpleRouter

from spatiallab.jobs.api import JobViewSet

router = SimpleRouter()
router.register("jobs", JobViewSet, basename="api-job")
urlpatterns = router.urls
