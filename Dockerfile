# The gridctl image: gateway + DR bridge (`gridctl run`) and the migrations job
# (`gridctl migrate up`) of compose.yaml. Build: docker build -t gridctl:0.1.0 .
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRIDCTL_DATA_DIR=/var/lib/gridctl

WORKDIR /app

# The whole build context (.dockerignore keeps it to the packages, migrations/ and sql/):
# migrations/ and sql/ are read at run time from the working directory (`gridctl
# migrate` and `gridctl query` look in ./migrations and ./sql), the packages installed.
# Dependencies come from requirements/runtime.txt, exported from uv.lock with hashes, so the
# image holds the versions the suite passed with; gridctl itself is installed without deps.
COPY . .
RUN pip install --require-hashes --no-deps -r requirements/runtime.txt \
    && pip install --no-deps . \
    && rm -rf build ./*.egg-info

# Run as an unprivileged user; only the data directory (API token file, local state) is
# writable.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/gridctl \
        --shell /usr/sbin/nologin gridctl \
    && mkdir -p /var/lib/gridctl \
    && chown gridctl:gridctl /var/lib/gridctl
USER gridctl

# 9000: OCPP websocket (chargers) and the gateway's /metrics; 8080: DR/stations API,
# /healthz, /metrics.
EXPOSE 9000 8080
ENTRYPOINT ["gridctl"]
CMD ["--help"]
