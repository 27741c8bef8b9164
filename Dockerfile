# linreg-ops: batch prediction (default) and HTTP serving from pickle-free artifacts.
#   make run && docker build --network host -t linreg-ops .
#   docker run --network none linreg-ops                               # metrics + first 10 predictions
#   docker run -p 8000:8000 linreg-ops linreg-ops serve --host 0.0.0.0 # HTTP service
ARG BASE_IMAGE=python:3.11-slim

# ---------------------------------------------------------------- builder: venv + wheel
FROM ${BASE_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# binutils only for `strip`: it lives in this stage, the final image never sees it.
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends binutils >/dev/null \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
# Dependencies first: this layer is reused until requirements-serve.txt changes.
COPY requirements-serve.txt /build/
RUN /opt/venv/bin/pip install --no-compile -r /build/requirements-serve.txt
COPY pyproject.toml README.md /build/
COPY src/linreg_ops /build/src/linreg_ops
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /build/wheels /build \
 && /opt/venv/bin/pip install --no-compile --no-deps /build/wheels/*.whl \
 # Only what runs stays: no pip/setuptools, no test suites; then byte-compile once.
 && /opt/venv/bin/pip uninstall --yes pip setuptools \
 && find /opt/venv -depth -type d -name tests \( -path "*/numpy/*" -o -path "*/pyarrow/*" \) -exec rm -rf {} + \
 # pyarrow: the CSV and Parquet readers stay; Arrow Flight (RPC), C++ headers and the
 # duplicate copies of libarrow_python go (the loader needs only the .so.NNNN name).
 && rm -rf /opt/venv/lib/python3*/site-packages/pyarrow/include \
           /opt/venv/lib/python3*/site-packages/pyarrow/libarrow_flight.so* \
           /opt/venv/lib/python3*/site-packages/pyarrow/_flight*.so \
           /opt/venv/lib/python3*/site-packages/pyarrow/libarrow_python.so \
           /opt/venv/lib/python3*/site-packages/pyarrow/libarrow_python.so.*.*.* \
           /opt/venv/lib/python3*/site-packages/pyarrow/*.pyx /opt/venv/lib/python3*/site-packages/pyarrow/*.pxd \
 # uvloop's and pyarrow's libraries ship with debug symbols: drop them (about 24 MB).
 # (Not numpy's libraries: auditwheel-patched ELF files break when stripped.)
 && strip --strip-unneeded /opt/venv/lib/python3*/site-packages/uvloop/*.so \
      /opt/venv/lib/python3*/site-packages/pyarrow/*.so* \
 && /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib
# The current version only, every file checked against its SHA-256, no pickles.
# `model[s]` copies nothing when models/ is absent, so the check can say what to do.
COPY model[s] /build/models/
RUN test -e /build/models/current \
 || { echo "ERROR: models/ with a published version is missing: run 'make run' (or download the CI artifact) before 'docker build'." >&2; exit 1; } \
 && /opt/venv/bin/python -c "from linreg_ops.storage import store; store.copy_current('/build/models', '/app/models')"

# ---------------------------------------------------------------- runtime
FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    LINREG_OPS_MODELS_DIR=/app/models
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin app
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY src/predict.py src/predict.py
COPY --from=builder /app/models models/
USER app
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status != 200)"]
CMD ["python", "src/predict.py"]
