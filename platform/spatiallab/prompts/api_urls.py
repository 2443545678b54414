from rest_framework.routers import SimpleRouter

from spatiallab.prompts.api import PromptSetViewSet

router = SimpleRouter()
router.register("prompt-sets", PromptSetViewSet, basename="api-prompt-set")
urlpatterns = router.urls
