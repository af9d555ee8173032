# syntax=docker/dockerfile:1
# One image for the four services and the citizens' portal; the command chooses which one runs:
#   python -m services.intake | services.processing | services.notification | services.reporting
#             | services.portal
# and `python /app/create_topics.py` creates the Kafka topics (a one-shot job).
#
# The base is pinned to an exact version tag. Pin the digest too when you build for production:
#   docker buildx imagetools inspect python:3.11.14-slim-trixie   → FROM python:3.11.14-slim-trixie@sha256:…
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies change less often than the code: a layer of their own.
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
# devstack/ (local servers and the providers' simulators) is for development: not in the image.
# Byte-code is compiled here, because the root filesystem is read-only at run time.
RUN pip install . && python -m compileall -q /opt/venv

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="dvc-platform" \
      org.opencontainers.image.description="DVC platform services (intake, processing, notification, reporting, portal)"
RUN groupadd --system --gid 10001 dvc \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin dvc
COPY --from=build /opt/venv /opt/venv
COPY deploy/create_topics.py /app/create_topics.py
WORKDIR /app
# Every service listens on 0.0.0.0:8000 inside a container; the JSON logs go to stderr.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DVC_INTAKE_HTTP_HOST=0.0.0.0 DVC_INTAKE_HTTP_PORT=8000 \
    DVC_PROCESSING_HTTP_HOST=0.0.0.0 DVC_PROCESSING_HTTP_PORT=8000 \
    DVC_NOTIFICATION_HTTP_HOST=0.0.0.0 DVC_NOTIFICATION_HTTP_PORT=8000 \
    DVC_REPORTING_HTTP_HOST=0.0.0.0 DVC_REPORTING_HTTP_PORT=8000 \
    DVC_PORTAL_HTTP_HOST=0.0.0.0 DVC_PORTAL_HTTP_PORT=8000
USER 10001:10001
EXPOSE 8000
# slim has no curl: the standard library asks /health/live.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request as r; r.urlopen('http://127.0.0.1:8000/health/live', timeout=2)"]
CMD ["python", "-c", "raise SystemExit('choose a service: python -m services.<intake|processing|notification|reporting|portal>')"]
