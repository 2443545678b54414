from rest_framework.routers import SimpleRouter

from spatiallab.rewards.api import RewardCheckpointViewSet, RewardEvaluationViewSet, RewardRunViewSet
from spatiallab.rewards.api_scoring import ScoreRequestViewSet

router = SimpleRouter()
router.register("reward-runs", RewardRunViewSet, basename="api-reward-run")
router.register("score-requests", ScoreRequestViewSet, basename="api-score-request")
router.register("reward-checkpoints", RewardCheckpointViewSet, basename="api-reward-checkpoint")
router.register("reward-evaluations", RewardEvaluationViewSet, basename="api-reward-evaluation")
urlpatterns = router.urls
