# syntax=docker/dockerfile:1
# Image for every jiesu role: API services, outbox relays and migrations.
#
#   docker build -t jiesu:local .
#   docker run --rm jiesu:local --help
#   docker run --rm -p 8001:8001 -e JIESU_INTAKE_DATABASE_URL=... jiesu:local serve intake --host 0.0.0.0 --port 8001
#
# The role is chosen by the arguments after the `jiesu` entrypoint
# (serve <svc>, relay <svc>, migrate <svc>); see deploy/README.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

# uv comes from the Python package index like any other dependency.
RUN pip install "uv>=0.5,<1"

WORKDIR /app

# Dependencies first (cached while only the source changes), exactly as locked.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

# Then the project itself.
COPY . .
RUN uv sync --frozen --no-dev \
    && useradd --system --uid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin jiesu

# Two malloc arenas rather than one per allocating thread: a smaller resident set for the same work.
ENV PATH="/app/.venv/bin:$PATH" \
    MALLOC_ARENA_MAX=2
USER 10001
EXPOSE 8001 8002 8003

ENTRYPOINT ["jiesu"]
CMD ["--help"]
