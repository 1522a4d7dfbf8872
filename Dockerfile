# Production image for the tuan Telegram bot.
#
#   docker build -t tuan-bot .
#   docker run --env-file .env -v tuan-data:/app/data tuan-bot
#
# Stage 1 ("builder") installs the project into a virtualenv and compiles the
# gettext catalogs; stage 2 ("runtime") copies only the results onto a clean
# slim image with the CJK font and runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --------------------------------------------------------------------------- #
# Stage 1: build
# --------------------------------------------------------------------------- #
FROM ${PYTHON_IMAGE} AS builder

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /app

# Dependencies first, for layer caching: this layer is rebuilt only when
# pyproject.toml or constraints.txt change, not on every source edit. The
# runtime dependency list is read from pyproject.toml ([project].dependencies)
# with the stdlib tomllib and installed under the exact pins of constraints.txt.
COPY pyproject.toml constraints.txt ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project'].get('dependencies', []); print(*deps, sep=chr(10))" > /tmp/requirements.txt \
    && pip install --no-cache-dir -c constraints.txt -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Now the sources (filtered by .dockerignore) and the non-editable install of
# the project itself; its dependencies are already satisfied above. The
# in-tree build leftovers (setuptools' build/ and *.egg-info) are removed so
# that they do not end up in /app.
COPY . .
RUN pip install --no-cache-dir -c constraints.txt . \
    && rm -rf build ./*.egg-info

# Compile the gettext catalogs (locales/<lang>/LC_MESSAGES/messages.po ->
# messages.mo). The .mo files are not committed (and are excluded from the
# build context by .dockerignore), so they are always built from the .po here.
RUN pybabel compile -d locales -D messages

# --------------------------------------------------------------------------- #
# Stage 2: runtime
# --------------------------------------------------------------------------- #
FROM ${PYTHON_IMAGE} AS runtime

# CJK font for matplotlib charts. Unpinned on purpose: see .hadolint.yaml.
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-noto-cjk \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

# Unprivileged user with a home directory (matplotlib keeps its config and
# font cache under ~/.config and ~/.cache).
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app \
        --shell /usr/sbin/nologin app

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    WEBHOOK_HOST=0.0.0.0 \
    WEBHOOK_PORT=8080

WORKDIR /app

# The virtualenv (dependencies + the installed project) and the application
# tree: sources, alembic.ini, migrations/ and locales/ with the compiled .mo.
# Both stay owned by root, i.e. read-only for the bot user. Because the bot is
# started with `python -m bot` from /app, the packages are imported from /app,
# so paths derived from __file__ (alembic.ini, migrations/, locales/) and paths
# relative to the working directory resolve to the same place.
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app

# The only writable place: SQLite database (when DATABASE_URL is left at its
# default), the heartbeat file used by the healthcheck, other runtime state.
RUN install -d -o app -g app -m 0750 /app/data
VOLUME ["/app/data"]

# Numeric uid:gid (= app:app above), so that Kubernetes' runAsNonRoot and
# host-side tooling can verify it without the image's /etc/passwd.
USER 10001:10001

# Webhook mode (MODE=webhook) listens here; polling mode opens it only to serve
# the Mini App (WEBAPP_URL set).
EXPOSE 8080

# `python -m bot healthcheck` exits 0 when ./data/heartbeat is fresh and the
# database answers, 1 otherwise. The start period leaves time for the
# migrations that the bot applies at start.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-m", "bot", "healthcheck"]

CMD ["python", "-m", "bot"]
