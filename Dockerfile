# siyu-guard: the compliance guard proxy.
#   docker build -t siyu-guard .
#   docker run --rm -p 127.0.0.1:8080:8080 -e GUARD_OPEN_WITHOUT_KEYS=true siyu-guard
#   docker run --rm -p 8080:8080 -v $PWD/guard.toml:/etc/siyu-guard/guard.toml:ro \
#       -e GUARD_CONFIG=/etc/siyu-guard/guard.toml siyu-guard
# Inside the container the guard listens on 0.0.0.0:8080. With no client keys configured it refuses to
# listen beyond loopback unless GUARD_OPEN_WITHOUT_KEYS=true, which is only safe when the port is
# published on the host's loopback (first line); to serve other machines, mount a config with [[keys]].
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY guard ./guard
COPY rules ./rules
COPY ratelimit ./ratelimit
RUN python -m pip wheel --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GUARD_HOST=0.0.0.0 GUARD_PORT=8080
COPY --from=build /wheels /wheels
RUN python -m pip install /wheels/*.whl && rm -rf /wheels \
    && groupadd --system guard && useradd --system --gid guard --home-dir /nonexistent --shell /usr/sbin/nologin guard \
    && mkdir -p /etc/siyu-guard && chown guard:guard /etc/siyu-guard
USER guard
EXPOSE 8080
# /healthz answers while the process serves; /readyz would also fail while Redis is down.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os,sys,urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GUARD_PORT', '8080'), timeout=2).status == 200 else 1)"]
ENTRYPOINT ["guard"]
CMD ["serve"]
