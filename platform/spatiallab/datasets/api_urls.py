from rest_framework.routers import SimpleRouter

from spatiallab.datasets.api import DatasetExportViewSet, DatasetVersionViewSet

router = SimpleRouter()
router.register("dataset-versions", DatasetVersionViewSet, basename="api-dataset-version")
router.register("dataset-exports", DatasetExportViewSet, basename="api-dataset-export")
urlpatterns = router.urls
