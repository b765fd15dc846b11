# The two commands a newcomer needs: `make demo` and `make test` (`make unit` for the
# fast layer alone).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo stop unit browser test lint format bench contracts dashboards stack-up stack-down clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: venv
	$(BIN)/citydesk demo run

stop: venv
	$(BIN)/citydesk demo stop

# the fast layer: pure logic and handler wiring, no server of any kind, well under a minute
unit: venv
	$(BIN)/pytest -q -p no:cacheprovider tests/unit

# the console tests drive Debian's chromium with a Chinese font (screenshots as people see
# them); installed here, once, rather than by a test fixture
CHROMIUM := /usr/bin/chromium
CJK_FONT := /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc

browser: $(CHROMIUM) $(CJK_FONT)

$(CHROMIUM) $(CJK_FONT):
	@command -v apt-get >/dev/null || { echo "needs Debian's chromium and fonts-wqy-zenhei (apt-get not found)"; exit 1; }
	$(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive sh -c 'apt-get update -q && apt-get install -y -q chromium fonts-wqy-zenhei'

# ruff, the fast layer first (a broken rule fails in seconds), then everything over the
# real servers
test: venv browser
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(MAKE) --no-print-directory unit
	$(BIN)/pytest -q -p no:cacheprovider --ignore=tests/unit

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: venv
	$(BIN)/citydesk bench

contracts: venv
	$(BIN)/citydesk contracts export --out docs/contracts

# the chart's two Grafana dashboards as PNGs (docs/dashboards/), from a real Prometheus
# scraping a small running city with the chart's rules: the run of
# tests/deploy/test_prometheus_city.py
dashboards: venv
	CITYDESK_DASHBOARDS_OUT=$(CURDIR)/docs/dashboards $(BIN)/pytest -q -p no:cacheprovider tests/deploy/test_prometheus_city.py

stack-up: venv
	$(BIN)/citydesk stack up

stack-down: venv
	$(BIN)/citydesk stack down

clean:
	-$(BIN)/citydesk stack down
	rm -rf $(VENV) .stack
