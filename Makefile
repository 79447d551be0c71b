# TaskRunner developer entry points. Every target installs what it needs itself.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
TR     := $(VENV)/bin/taskrunner
STAMP  := $(VENV)/.installed
NODE_TOOLS := .tools/node
ASL_VALIDATOR := $(NODE_TOOLS)/node_modules/.bin/asl-validator
SAM_VENV := .venv-sam
SAM_STAMP := $(SAM_VENV)/.installed
PACK ?= examples/packs/hello.yaml

.PHONY: run test unit lint asl-tools sam-tools sam-validate bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

## run: an example pack end to end on the embedded defaults, then verify its evidence offline
run: $(STAMP)
	$(TR) run $(PACK)
	@set -e; home=$${TASKRUNNER_HOME:-.taskrunner}; \
	run_id=$$($(TR) runs list --limit 1 --json | $(PY) -c 'import json,sys; print(json.load(sys.stdin)[0]["runId"])'); \
	$(TR) runs export $$run_id -o $$home/evidence-$$run_id.tar.gz >/dev/null; \
	$(TR) keys export-public > $$home/signing.pub.pem; \
	$(TR) verify $$home/evidence-$$run_id.tar.gz --trust $$home/signing.pub.pem --require-dsse

$(ASL_VALIDATOR):
	mkdir -p $(NODE_TOOLS)
	npm install --silent --no-audit --no-fund --prefix $(NODE_TOOLS) asl-validator@4.0.0

asl-tools: $(ASL_VALIDATOR)

## test: every test (lint, types, SAM checks, unit, integration, e2e)
test: $(STAMP) asl-tools sam-validate
	$(VENV)/bin/ruff check layers functions tests bench
	$(VENV)/bin/ruff format --check layers functions tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q -n 2

unit: $(STAMP)
	$(VENV)/bin/pytest -q tests/unit

lint: $(STAMP)
	$(VENV)/bin/ruff check layers functions tests bench
	$(VENV)/bin/mypy

$(SAM_STAMP):
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install -q aws-sam-cli==1.170.0 cfn-lint==1.58.0
	touch $(SAM_STAMP)

sam-tools: $(SAM_STAMP)

## sam-validate: lint and build the SAM app offline (no AWS account: a region is set, telemetry off)
sam-validate: $(SAM_STAMP)
	AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam validate --lint
	$(SAM_VENV)/bin/cfn-lint template.yaml
	AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam build

bench: $(STAMP)
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(SAM_VENV) $(NODE_TOOLS) .aws-sam .taskrunner .pytest_cache .mypy_cache .ruff_cache
