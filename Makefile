# Two commands for a newcomer: `make run` and `make test`. Everything else here serves them.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages: the age tool (interoperability tests), bubblewrap (the build
# verification sandbox), OpenSSH's ssh-keygen (SSHSIG signatures), Chromium (browser tests),
# Pango and fonts (WeasyPrint PDFs).
SYSTEM_PACKAGES := age bubblewrap openssh-client chromium libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core restic postgresql-client
SYSTEM_COMMANDS := age age-keygen bwrap ssh-keygen chromium restic pg_dump
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format pytest system-deps venv lock check-deploy screenshots bench bench-lists bench-sandbox clean

# The embedded default, on HOST:PORT; links in the demo's output and in e-mails use that address.
RUN_ENV = DJANGO_DEBUG=true ESCROW_PUBLIC_URL=http://$(HOST):$(PORT)

run: venv
	$(RUN_ENV) $(BIN)/python manage.py migrate --no-input --verbosity 0
	$(RUN_ENV) $(BIN)/python manage.py demo
	@echo "Serving on http://$(HOST):$(PORT)/ with the scheduler beside it (Ctrl-C stops both); each journey starts at its link above"
	$(RUN_ENV) $(BIN)/python manage.py run_schedule & scheduler=$$!; \
	  trap 'kill $$scheduler 2>/dev/null; wait $$scheduler' EXIT; \
	  $(RUN_ENV) $(BIN)/python manage.py runserver --noreload $(HOST):$(PORT)

test: venv system-deps lint pytest

# Line coverage of the application packages; the run fails below COVERAGE_FLOOR (percent),
# set at the lower of the figures measured (91.4% on the embedded default, 90.4% in CI
# with PostgreSQL and Redis, where tasks go to the broker), rounded down.
COVERAGE_FLOOR ?= 90
COVERAGE_ARGS := --cov --cov-report=term:skip-covered --cov-fail-under=$(COVERAGE_FLOOR)

# The suite runs in PYTEST_WORKERS processes at once (pytest-xdist; `PYTEST_WORKERS=0` runs
# it in this one process). Each worker has its own test database; tests marked
# `xdist_group` stay in one worker. PYTEST_ARGS adds anything else, e.g. a test's id.
PYTEST_WORKERS ?= 3
PYTEST_DIST ?= loadgroup
XDIST_ARGS := -n $(PYTEST_WORKERS) --dist $(PYTEST_DIST)

pytest: venv system-deps
	$(BIN)/python -m pytest $(XDIST_ARGS) $(COVERAGE_ARGS) $(PYTEST_ARGS)

# Style, types, and the architecture: the layers contract (import-linter, in
# pyproject.toml) and no import loops anywhere (tools/import_cycles.py).
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	$(BIN)/python tools/import_cycles.py

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

venv: $(STAMP)

$(STAMP): requirements.lock requirements-dev.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (found " + sys.version.split()[0] + "); set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock -r requirements-dev.lock
	touch $(STAMP)

# Installs the Debian packages when run as root with apt; otherwise names what is missing.
system-deps:
	@missing=""; for c in $(SYSTEM_COMMANDS); do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	for p in libpango-1.0-0 libpangoft2-1.0-0; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "Installing system packages: $(SYSTEM_PACKAGES)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	  else \
	    echo "Missing system packages:$$missing. Install the Debian packages: $(SYSTEM_PACKAGES)"; exit 1; \
	  fi; \
	fi

# Recompute both lock files from requirements*.in (needs network access to PyPI).
lock: venv
	$(BIN)/python -m pip install --quiet pip-tools
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras -o requirements.lock requirements.in
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras -o requirements-dev.lock requirements-dev.in

# `manage.py check --deploy` with a complete (fake but well-formed) production environment.
check-deploy: venv
	env DJANGO_SECRET_KEY="$$(head -c 48 /dev/urandom | base64)" DJANGO_ALLOWED_HOSTS=escrow.example.com \
	  ESCROW_PUBLIC_URL=https://escrow.example.com ESCROW_SIGNATURE_DOMAIN=escrow.example.com \
	  ESCROW_SIGNING_KEY="$$($(BIN)/python -c 'from vault.manifest import generate_signing_key as g, signing_key_pem as p; print(p(g()).decode())')" \
	  ESCROW_EVIDENCE_IDENTITY="$$(age-keygen 2>/dev/null)" \
	  ESCROW_BACKUP_RECIPIENTS="$$(age-keygen 2>/dev/null | grep -o 'age1[a-z0-9]*' | head -1)" \
	  ESCROW_BACKUP_SITE_URL=s3://escrow-backups ESCROW_BACKUP_SITE_ENDPOINT=https://s3.eu-west-1.amazonaws.com \
	  DJANGO_SECURE=true DATABASE_URL=postgres://escrow@db.example.com:5432/escrow \
	  CELERY_BROKER_URL=redis://broker.example.com:6379/0 ESCROW_SITES=primary,replica \
	  ESCROW_SITE_PRIMARY_URL=s3://escrow-primary ESCROW_SITE_PRIMARY_ENDPOINT=https://s3.eu-central-1.amazonaws.com \
	  ESCROW_SITE_REPLICA_URL=s3://escrow-replica ESCROW_SITE_REPLICA_ENDPOINT=https://s3.other-provider.example \
	  $(BIN)/python manage.py check --deploy --fail-level WARNING

# Re-take the README's dashboard screenshots with the browser smoke test.
screenshots: venv system-deps
	ESCROW_SCREENSHOT_DIR=docs/screenshots $(BIN)/python -m pytest tests/browser -q

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .mypy_cache .ruff_cache

# Benchmarks, run by hand (never in `make test`): rewrites their sections of docs/benchmarks.md.
bench: venv system-deps
	$(BIN)/python -m bench.run

# The list pages at scale on PostgreSQL (a database of its own; see bench/README.md).
bench-lists: venv
	$(BIN)/python -m bench.list_pages

# The build verification sandbox's overhead on a trivial build (needs root and bwrap).
bench-sandbox: venv system-deps
	$(BIN)/python -m bench.sandbox_overhead
