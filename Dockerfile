# One image for web and workers. TORCH_INDEX_URL picks the torch build: CPU by default (web, cpu worker),
# a CUDA index for the GPU worker (docker-compose.yml builds both).
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VAR_DIR=/data/var \
    MEDIA_ROOT=/data/media \
    STATIC_ROOT=/srv/static

WORKDIR /app
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"
COPY pyproject.toml manage.py ./
COPY platform ./platform
COPY workers ./workers
COPY ml ./ml
COPY templates ./templates
COPY static ./static
RUN pip install ".[ml,s3]" \
    && python manage.py collectstatic --noinput -v 0 \
    && useradd --create-home --uid 1000 spatiallab \
    && mkdir -p /data/var /data/media \
    && chown -R spatiallab /data

USER spatiallab
EXPOSE 8000
CMD ["gunicorn", "spatiallab.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
