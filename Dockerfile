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
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 10001 app
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
    STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
WORKDIR /app
COPY --chown=app:app core ./core
COPY --chown=app:app dashboard ./dashboard
COPY --chown=app:app pages ./pages
COPY --chown=app:app .streamlit ./.streamlit
RUN mkdir -p /data && chown app:app /data
USER app
# The demo (data + checkpoints) is built at image build time so the first start is instant;
# mount a volume on /data to keep your own checkpoints.
RUN python -m core demo
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD curl -fsS http://localhost:8501/_stcore/health || exit 1
CMD ["streamlit", "run", "dashboard/app.py", "--server.address=0.0.0.0", "--server.port=8501", "--server.headless=true"]
