from rest_framework.routers import SimpleRouter

from spatiallab.rewards.api import RewardRunViewSet

router = SimpleRouter()
router.register("reward-runs", RewardRunViewSet, basename="api-reward-run")
urlpatterns = router.urls
