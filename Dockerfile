# communities-appservice as a container, in the mautrix bridges' layout: one volume, /data,
# holds config.yaml, registration.yaml and (with the default config) the SQLite database.
#   docker build -t communities-appservice .
#   docker run --rm -v "$PWD/data:/data" communities-appservice   # writes config.yaml: edit it
#   docker run --rm -v "$PWD/data:/data" communities-appservice   # writes registration.yaml
#   docker run -d --restart unless-stopped -v "$PWD/data:/data" -p 29333:29333 \
#       communities-appservice
# Set appservice.hostname to 0.0.0.0 in the config so that the homeserver reaches the port.

FROM python:3.12-slim AS build
# python-olm builds libolm when no wheel fits: a compiler and cmake.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
COPY pyproject.toml README.md /src/
COPY communities_appservice /src/communities_appservice
RUN /opt/venv/bin/pip install --no-cache-dir /src

FROM python:3.12-slim
RUN useradd --system --uid 1337 --home-dir /data communities \
    && mkdir -p /data /opt/communities-appservice \
    && chown communities /data
COPY --from=build /opt/venv /opt/venv
COPY config.example.yaml /opt/communities-appservice/example-config.yaml
COPY docker/run.sh /opt/communities-appservice/run.sh
ENV PATH=/opt/venv/bin:$PATH
USER communities
VOLUME /data
WORKDIR /data
EXPOSE 29333
HEALTHCHECK --interval=30s --timeout=5s \
    CMD python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:29333/_matrix/mau/live')"
ENTRYPOINT ["/opt/communities-appservice/run.sh"]
