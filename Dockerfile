# One image for every CityDesk service; the command picks the service:
#   docker run IMAGE citydesk serve review --host 0.0.0.0 --port 8103
# (the Helm chart sets that command per Deployment).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/citydesk
WORKDIR /src
COPY pyproject.toml README.md ./
COPY citydesk ./citydesk
COPY shared ./shared
COPY services ./services
# a regular (not editable) install: the package data (org tree, seed YAML, templates)
# goes into the virtualenv with the code
RUN /opt/citydesk/bin/pip install . \
    && /opt/citydesk/bin/python -m compileall -q /opt/citydesk/lib

FROM python:3.11-slim AS runtime
# no system ffmpeg: media uses the one inside the imageio-ffmpeg wheel; a CJK font for the
# Chinese labels of the sentiment briefings' trend chart
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-zenhei \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 citydesk \
    && useradd --system --uid 10001 --gid citydesk --home-dir /app --shell /usr/sbin/nologin citydesk
COPY --from=build /opt/citydesk /opt/citydesk
ENV PATH=/opt/citydesk/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CITYDESK_ENVIRONMENT=production
# an empty working directory: `citydesk serve` uses a local stack only when .stack/ exists
WORKDIR /app
USER 10001:10001
EXPOSE 8101 8102 8103 8104 8105
CMD ["citydesk", "serve", "submission", "--host", "0.0.0.0", "--port", "8101"]
