# REST endpoints for verification (api.py).
urlpatterns: list = []
