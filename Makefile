# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo stop test lint format bench contracts dashboards stack-up stack-down clean

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

test: venv
	$(BIN)/ruff check .
	$(BIN)/pytest -q -p no:cacheprovider

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

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
