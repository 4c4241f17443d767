# Two commands for a new machine: `make run` (embedded platform with demo data) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8000

.PHONY: run test test-fast install install-dev lint format worker beat clean-var screenshots

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.dev-installed

## make run: migrate, load the demo, start a Celery worker, Celery beat and the web server on 127.0.0.1:$(PORT).
# The local demo runs in development mode (production settings are the default: DEBUG off, SECRET_KEY required).
run: export DEBUG ?= true
run: install
	$(PY) manage.py migrate --noinput && $(PY) manage.py sync_endpoints
	$(PY) manage.py load_demo --port $(PORT)
	@echo "Starting a Celery worker (log: var/worker.log), Celery beat (var/beat.log) and the web server on http://127.0.0.1:$(PORT)/"
	@# All run in the background so that the shell's trap fires at once on Ctrl-C / TERM (a trap waits
	@# for a foreground child); background jobs ignore SIGINT, so the trap is what stops them. Stale pid
	@# files of a killed run would stop celery from starting: each process is ours to replace.
	@rm -f var/worker.pid var/beat.pid; \
	$(VENV)/bin/celery -A mminstruct_site worker --pool=threads --concurrency=4 --loglevel=INFO \
		--logfile=var/worker.log --pidfile=var/worker.pid >/dev/null & worker=$$!; \
	$(VENV)/bin/celery -A mminstruct_site beat --loglevel=INFO \
		--logfile=var/beat.log --pidfile=var/beat.pid >/dev/null & beat=$$!; \
	$(PY) manage.py runserver --noreload 127.0.0.1:$(PORT) & web=$$!; \
	trap 'trap - EXIT INT TERM; kill $$web $$worker $$beat 2>/dev/null; wait $$web $$worker $$beat 2>/dev/null' EXIT INT TERM; \
	wait -n $$web $$worker $$beat

## make beat: Celery beat on its own (exactly one per installation runs the periodic sweeps).
beat: install
	$(VENV)/bin/celery -A mminstruct_site beat --loglevel=INFO

## make worker: a Celery worker on its own (production-like setups with REDIS_URL set).
worker: install
	$(VENV)/bin/celery -A mminstruct_site worker --loglevel=INFO

## make test: install the dev dependencies and run the whole suite. It runs on the local PostgreSQL and Redis
## when they answer on their default ports (127.0.0.1:5432 as user postgres, 127.0.0.1:6379), on SQLite
## without Redis when they do not (tests/settings.py; the run's first lines say which); DATABASE_URL and
## REDIS_URL, when set, win.
test: install-dev
	$(PY) -m pytest $(PYTEST_ARGS)

## make test-fast: the inner loop — the suite without the tests that drive Chromium, start Celery
## processes or fuzz the whole API (markers browser, worker, api_fuzz).
test-fast: install-dev
	$(PY) -m pytest -m "not browser and not worker and not api_fuzz" $(PYTEST_ARGS)

## make screenshots: every page as each role sees it, in var/screenshots/<role>/ (Chromium; a table of
## console errors and requests to other hosts per page is printed, and the run fails on any).
screenshots: install-dev
	$(PY) -m pytest tests/browser/screenshots.py -p no:cacheprovider -s -q $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DEBUG=true $(PY) manage.py makemigrations --check --dry-run

format: install-dev
	$(VENV)/bin/ruff format .
