from rest_framework.routers import SimpleRouter

from spatiallab.grpo.api import GrpoCheckpointViewSet, GrpoRunViewSet

router = SimpleRouter()
router.register("grpo-runs", GrpoRunViewSet, basename="api-grpo-run")
router.register("grpo-checkpoints", GrpoCheckpointViewSet, basename="api-grpo-checkpoint")
urlpatterns = router.urls
