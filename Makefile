# opsboard: `make demo` runs it on embedded defaults against an emulated AWS; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
PORT ?= 8000

.PHONY: install demo test browser bench run worker clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

## The whole app on embedded defaults (SQLite, filesystem broker) with an emulated AWS.
demo: install
	DEBUG=$${DEBUG:-true} $(PY) manage.py migrate --noinput
	DEBUG=$${DEBUG:-true} $(PY) manage.py demo --port $(PORT)

## Debian's Chromium for the browser tests (skipped, with the reason, where it cannot be installed).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "could not install chromium: browser tests will be skipped"; \
	  else echo "no /usr/bin/chromium and no root to install it: browser tests will be skipped"; fi; \
	fi

## The whole suite: on Postgres/Redis when DATABASE_URL/CELERY_BROKER_URL say so, else embedded defaults.
test: install browser
	$(PY) -m pytest

bench: install
	$(PY) bench/collect_bench.py

run: install
	DEBUG=$${DEBUG:-true} $(PY) manage.py runserver $(PORT)

worker: install
	$(VENV)/bin/celery -A opsboard worker -B -l info

clean:
	rm -rf $(VENV) var .pytest_cache
