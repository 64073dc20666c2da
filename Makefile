# Two commands on a fresh machine: `make run` and `make test`. Everything else is set-up they do.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: run test install lint bench services-up services-down clean chromium

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make run: web + Celery worker + Celery beat (embedded PostgreSQL/Redis unless DATABASE_URL/REDIS_URL are set)
run: $(STAMP)
	$(PY) -m config.launcher

## make test: the whole suite against a real PostgreSQL and Redis (embedded unless the URLs are set)
test: $(STAMP) chromium
	$(PY) -m config.embedded exec -- $(PY) -m pytest $(PYTEST_ARGS)

## The browser tests drive Debian's chromium (Playwright's own download cannot work offline). When it is
## missing and this is a root shell on Debian, it is installed from Debian's packages; otherwise the
## browser tests are skipped and say why.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "[tradeops] installing Debian's chromium for the browser tests"; \
	    { timeout 600 apt-get install -y -q chromium >/dev/null 2>&1 || \
	      { timeout 300 apt-get update -q >/dev/null 2>&1 && timeout 600 apt-get install -y -q chromium >/dev/null 2>&1; }; } || \
	      echo "[tradeops] chromium could not be installed: the browser tests will be skipped"; \
	  else echo "[tradeops] chromium is not installed (apt-get install chromium): the browser tests will be skipped"; fi; }

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

services-up: $(STAMP)
	$(PY) -m config.embedded up

services-down: $(STAMP)
	$(PY) -m config.embedded down

clean: services-down
	rm -rf var/

## make bench: benchmarks (not tests); each prints our figure and the peer's from the same run.
## All of them run; the exit status is non-zero when any missed its target or failed.
## The peers of the backtest benchmarks (backtesting.py, vectorbt) install with the `bench` extra,
## on top of `dev`: `make test` never needs them.
BENCH_STAMP := $(VENV)/.installed-bench-stamp
$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	touch $(BENCH_STAMP)

BENCHES := metering integrations_status job_ledger runner_api tick_pipeline bar_arrays vectorized_eval backtest_engine backtest_matrix lab_experiment
bench: $(BENCH_STAMP)
	$(PY) -m config.embedded exec -- sh -c 'rc=0; for b in $(BENCHES); do $(PY) bench/$$b.py || rc=1; done; exit $$rc'
