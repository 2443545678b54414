from rest_framework.routers import SimpleRouter

from spatiallab.generation.api import GenerationFailureViewSet, GeneratorViewSet, PairViewSet

router = SimpleRouter()
router.register("generators", GeneratorViewSet, basename="api-generator")
router.register("pairs", PairViewSet, basename="api-pair")
router.register("generation-failures", GenerationFailureViewSet, basename="api-generation-failure")
urlpatterns = router.urls
