# opsboard: `make demo` runs it on embedded defaults against an emulated AWS; `make test` runs the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HASH := $(shell cksum pyproject.toml | cut -d' ' -f1)
RUN_STAMP := $(VENV)/.installed-run-$(HASH)
DEV_STAMP := $(VENV)/.installed-dev-$(HASH)
PORT ?= 8000

# The app with the emulator (what `make demo` needs), and on top of it the test tools.
$(RUN_STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[emulator]'
	@rm -f $(VENV)/.installed-run-*
	@touch $(RUN_STAMP)

$(DEV_STAMP): $(RUN_STAMP)
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-dev-*
	@touch $(DEV_STAMP)

install: $(DEV_STAMP)

## The whole app on embedded defaults (SQLite, filesystem broker) with an emulated AWS.
demo: $(RUN_STAMP)
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

## promtool, for the tests of the Prometheus files in deploy/ (skipped, with the reason, where it cannot
## be had): unpacked from Debian's prometheus package into the venv rather than installed, since
## installing the package would start a Prometheus server on port 9090. Downloading needs no root;
## refreshing the package lists does.
PROMTOOL := $(VENV)/tools/bin/promtool
tools:
	@if [ ! -x $(PROMTOOL) ] && ! command -v promtool >/dev/null; then \
	  if command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null; then \
	    tmp=$$(mktemp -d); \
	    ( (cd $$tmp && apt-get download prometheus >/dev/null 2>&1) \
	      || ([ "$$(id -u)" = 0 ] && apt-get update -qq && cd $$tmp && apt-get download prometheus >/dev/null 2>&1) ) \
	    && mkdir -p $(VENV)/tools \
	    && dpkg-deb --fsys-tarfile $$tmp/prometheus_*.deb | tar -x -C $(VENV)/tools --strip-components=2 ./usr/bin/promtool \
	    || echo "could not fetch Debian's prometheus package: the promtool tests will be skipped"; \
	    rm -rf $$tmp; \
	  else echo "no promtool and no apt-get to fetch it: the promtool tests will be skipped"; fi; \
	fi

## Lint and format check (ruff, configured in pyproject.toml); CI runs it before the suite.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

## The whole suite: on Postgres/Redis when DATABASE_URL/CELERY_BROKER_URL say so, else embedded defaults.
test: install browser tools
	$(PY) -m pytest

## Benchmarks print figures (they assert nothing): collection calls/time/cost, dashboard latency
## (needs Postgres on 127.0.0.1:5432; loads 8.6 million rows once), redrive throughput, alert lead time
## (real time: about 16 minutes), alert evaluation cost (Postgres), 50 operators on the overview through
## gunicorn for 60 s (Postgres on 127.0.0.1:5432 when it answers, else SQLite).
bench: install
	$(PY) bench/collect_bench.py

bench-dashboard: install
	$(PY) bench/dashboard_bench.py

bench-redrive: install
	$(PY) bench/redrive_bench.py

bench-triage: install
	$(PY) bench/triage_bench.py

bench-alerts: install
	$(PY) bench/alert_lead_bench.py

bench-alerts-eval: install
	$(PY) bench/alert_eval_bench.py

bench-load: install
	$(PY) bench/load_overview.py

bench-overview: install
	$(PY) bench/overview_scale_bench.py

bench-slo: install
	$(PY) bench/slo_bench.py

## Minute history at 10,000 pipelines (Postgres on 127.0.0.1:5432): one cycle's per-shard upserts, and a
## day's retention by DELETE against dropping its partition (generates 14.4 million rows twice: about
## half an hour; `bench/history_bench.py --day-fraction 0.1` for a tenth).
bench-history: install
	$(PY) bench/history_bench.py

## Sharded collection: 10,000 pipelines in 50 accounts on 1 and 2 Celery worker processes against a stub
## AWS endpoint (Redis on 127.0.0.1:6379/10; Postgres on 127.0.0.1:5432 when it answers, else SQLite).
bench-scale: install
	$(PY) bench/shard_bench.py

## The web server alone, and a worker with beat, with the environment as it is (.env: SECRET_KEY, or DEBUG=true).
run: $(RUN_STAMP)
	$(PY) manage.py runserver $(PORT)

worker: $(RUN_STAMP)
	$(VENV)/bin/celery -A opsboard worker -B -l info

clean:
	rm -rf $(VENV) var .pytest_cache
