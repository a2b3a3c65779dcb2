# syntax=docker/dockerfile:1
# Fusion Lens dashboard. Same install steps as the README (requirements.txt, then the
# --no-deps extras). CPU by default; for CUDA build with
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t fusion-lens:cuda .
# and run with --gpus all.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.txt requirements-nodeps.txt ./
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --extra-index-url "${TORCH_INDEX}" -r requirements.txt \
 && /opt/venv/bin/pip install --no-deps -r requirements-nodeps.txt

FROM python:${PYTHON_VERSION}-slim AS runtime
# libgomp1: numba's OpenMP threading layer (librosa) links the system one. Not pinned: the
# base image tag fixes the Debian release, and pinning would refuse its security updates.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 app \
 && useradd --create-home --uid 10001 --gid app app
COPY --from=build /opt/venv /opt/venv
# PYTHONPATH: `streamlit run dashboard/app.py` puts only dashboard/ on sys.path; core and
# dashboard are imported from /app (locally `make setup` installs the repo editable instead).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    FUSION_CACHE_DIR=/data/cache \
    FUSION_CHECKPOINTS=/data/checkpoints \
    FUSION_DEMO_DATA=/data/demo_data \
    FUSION_RUNS=/data/runs \
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
WORKDIR /app
# The code stays root-owned (read-only to the app); everything the app writes goes to /data.
COPY core ./core
COPY dashboard ./dashboard
COPY pages ./pages
COPY .streamlit ./.streamlit
RUN mkdir -p /data && chown app:app /data
# Numeric, so that runtimes enforcing runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
# The demo (data + checkpoints) is built at image build time so the first start is instant;
# mount a volume on /data to keep your own checkpoints.
RUN python -m core demo
# It listens on 0.0.0.0, so it starts read-only: no training, no writes but caches
# (`docker run -e FUSION_READ_ONLY=0` turns training on). Set after the demo build, which writes.
# Sign-in: mount a secrets file (never baked in; see the README, "Deploying for a team"):
#   docker run -v $PWD/secrets.toml:/app/.streamlit/secrets.toml:ro ...
ENV FUSION_READ_ONLY=1
EXPOSE 8501
# Python rather than curl: one package less in the image; a failed request exits non-zero.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
CMD ["streamlit", "run", "dashboard/app.py", "--server.address=0.0.0.0", "--server.port=8501", "--server.headless=true"]
