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
SAM_ENV := AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0
# The SAM tests build and run x86_64 (arm64 would need emulation) into their own build dir.
SAM_BUILD_X86 := .aws-sam/build-x86_64
MONGO_VENV := .venv-mongo
MONGO_STAMP := $(MONGO_VENV)/.installed
# mongoeco (the MongoDB wire server of the SAM tests) needs Python 3.13: pyenv's, else one on PATH.
PYTHON313 ?= $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.13*/bin/python3.13) $(shell command -v python3.13))
WITH_DOCKER := tools/lambda-image/with-docker.sh
LAMBDA_IMAGE := env PIP="$(PY) -m pip" tools/lambda-image/build.sh x86_64
PACK ?= examples/packs/hello.yaml

.PHONY: run test unit lint asl-tools sam-tools sam-validate sam-build-x86 docker-tools browser-tools browser lambda-image sam-local bench clean

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

## test: every test (lint, types, SAM checks, unit, integration, e2e, the built functions under SAM CLI)
test: $(STAMP) asl-tools sam-validate sam-build-x86 $(MONGO_STAMP) docker-tools browser-tools
	$(VENV)/bin/ruff check layers functions tests bench
	$(VENV)/bin/ruff format --check layers functions tests bench
	$(VENV)/bin/mypy
	$(WITH_DOCKER) sh -c '$(LAMBDA_IMAGE) && TASKRUNNER_SAM_LOCAL=1 $(VENV)/bin/pytest -q -n 2 --dist loadgroup'

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

## sam-build-x86: `sam build` for x86_64 into its own build dir (the default build stays arm64)
sam-build-x86: $(SAM_STAMP)
	$(SAM_ENV) $(SAM_VENV)/bin/sam build --parameter-overrides Architecture=x86_64 --build-dir $(SAM_BUILD_X86)

$(MONGO_STAMP): tools/mongo-wire/requirements.txt
	@test -n "$(PYTHON313)" || { echo "Python 3.13 is needed for $(MONGO_VENV): install it (pyenv install 3.13) or set PYTHON313" >&2; exit 1; }
	test -x $(MONGO_VENV)/bin/python || $(PYTHON313) -m venv $(MONGO_VENV)
	$(MONGO_VENV)/bin/pip install -q -r tools/mongo-wire/requirements.txt
	touch $(MONGO_STAMP)

docker-tools:
	@command -v dockerd >/dev/null && command -v debootstrap >/dev/null || { \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io debootstrap; }

## browser-tools: Debian's Chromium and its WebDriver, for the web console's browser tests
browser-tools:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; }

## browser: only the web console's browser tests (headless Chromium against `taskrunner serve`)
browser: $(STAMP) browser-tools
	$(VENV)/bin/pytest -q -n 0 tests/browser

## lambda-image: the local stand-in for the Lambda Python 3.11 base image (built once per machine)
lambda-image: $(STAMP) docker-tools
	$(WITH_DOCKER) $(LAMBDA_IMAGE)

## sam-local: only the SAM tests (printing timings): the built functions in a Lambda interpreter and under `sam local`
sam-local: $(STAMP) sam-build-x86 $(MONGO_STAMP) docker-tools
	$(WITH_DOCKER) sh -c '$(LAMBDA_IMAGE) && TASKRUNNER_SAM_LOCAL=1 $(VENV)/bin/pytest -q -n 0 -s tests/sam'

## bench: every bench/*.py, then cold starts with the first invocation; the Prefect comparison (it installs
## Prefect into .venv-bench-prefect) only with BENCH_PEER=1
bench: $(STAMP) $(MONGO_STAMP)
	for b in bench/*.py; do \
	  case $$b in bench/peer_*) [ -n "$(BENCH_PEER)" ] || { echo "== $$b skipped (BENCH_PEER=1 runs it)"; continue; };; esac; \
	  echo "== $$b"; $(PY) $$b || exit 1; done
	echo "== bench/cold_import.py --first-call"; $(PY) bench/cold_import.py --first-call

clean:
	rm -rf $(VENV) $(SAM_VENV) $(MONGO_VENV) .venv-bench-prefect $(NODE_TOOLS) .aws-sam .taskrunner .pytest_cache .mypy_cache .ruff_cache
