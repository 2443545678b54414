"""The Celery app. Its settings are the CELERY_* values of the one Django settings module.

Start a CPU worker:  celery -A workers.app worker -Q cpu --concurrency 2 --beat
Start a GPU worker:  celery -A workers.app worker -Q gpu --pool solo --concurrency 1
(GPU workers run one process: CUDA cannot be initialised in a forked child, and torch is imported only
inside task code.)
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spatiallab.settings")

app = Celery("spatiallab", include=["workers.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.set_default()
