# The menu: everything a person runs. `make serve` and `make test` work from a fresh clone.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 3000
HOST ?= 127.0.0.1
USERS ?= 50
RUN_TIME ?= 60s
PROFILE ?= mix
CONTAINERIZE_ARGS ?=
export BENTOML_DO_NOT_TRACK := true

.PHONY: help install sysdeps train models gate build image serve test test-fast lint loadtest bench clean promote simulate pipeline monitor

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "need $(PY) on PATH (or make PY=python3)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its test tools

sysdeps:  ## Debian packages the full suite needs (chromium, prometheus, postgresql, buildah/podman)
	@bash tools/sysdeps.sh

train: install  ## train champion + challenger, log to MLflow, save to the BentoML store (DATA=file.csv|.parquet)
	$(BIN)/python -m training $(if $(DATA),--data "$(DATA)")

models: install  ## train only if the store lacks the served models
	$(BIN)/python -m training --if-missing

gate: models  ## the pytest metric gate on the models the service will ship
	$(BIN)/pytest gating -q -p no:cacheprovider

build: gate  ## gate, then bentoml build with both gated tags pinned
	$(BIN)/python -m gating.build

image: build  ## gate, build, then bentoml containerize (CONTAINERIZE_ARGS="--backend buildah")
	$(BIN)/bentoml containerize $$(cat reports/build/bento_tag.txt) $(CONTAINERIZE_ARGS)

pipeline: install  ## the delivery workflow's steps up to the image, locally: no push, no deploy (FULL_SUITE=1, RETRAIN=0)
	CONTAINERIZE_ARGS='$(CONTAINERIZE_ARGS)' bash tools/pipeline.sh

serve: gate  ## train if needed, gate, then bentoml serve on http://$(HOST):$(PORT) (HOST=0.0.0.0: every interface)
	$(BIN)/bentoml serve service:FraudDetection --host $(HOST) --port $(PORT)

lint: install  ## ruff, and the layers (lint-imports: contracts in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: install sysdeps lint  ## the whole suite: unit, service, browser, alerts, container, then the gate
	$(BIN)/pytest -p no:cacheprovider --durations=30
	$(MAKE) gate

test-fast: install  ## unit tests only (no server, no system packages)
	$(BIN)/pytest tests/unit -q

loadtest: gate  ## serve + locust headless (USERS, RUN_TIME, PROFILE=mix|reference); reports/loadtest/
	$(BIN)/python -m loadtests.run --users $(USERS) --run-time $(RUN_TIME) --profile $(PROFILE)

promote: install  ## challenger -> champion (MLflow aliases + store roles) if the verdict is challenger_better
	$(BIN)/python -m training.promote $(PROMOTE_ARGS)

simulate: install  ## A/A and A/B experiments through the service's statistics: the table in docs/statistics.md
	$(BIN)/python -m simulations.ab $(SIMULATE_ARGS)

monitor: install  ## Prometheus :9090 (+ alert rules) and MLflow UI :5000 for the service on PORT; Ctrl-C stops both
	$(BIN)/python tools/monitor.py --port $(PORT)

bench: gate  ## the performance benchmark; figures beside baselines from the same run
	$(BIN)/python -m loadtests.bench

clean:  ## remove reports and caches (not the stores)
	rm -rf reports .pytest_cache .ruff_cache
