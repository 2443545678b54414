from django.urls import path
from rest_framework.routers import SimpleRouter

from spatiallab.prompts.api import (
    PerturbationRuleViewSet,
    PerturbedPromptViewSet,
    PerturbView,
    PromptSetViewSet,
    PromptViewSet,
)

router = SimpleRouter()
router.register("prompt-sets", PromptSetViewSet, basename="api-prompt-set")
router.register("prompts", PromptViewSet, basename="api-prompt")
router.register("perturbation-rules", PerturbationRuleViewSet, basename="api-perturbation-rule")
router.register("perturbed-prompts", PerturbedPromptViewSet, basename="api-perturbed-prompt")
urlpatterns = [*router.urls, path("perturb/", PerturbView.as_view(), name="api-perturb")]
