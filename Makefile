# Two commands work on a fresh machine: `make run` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The Azure ML inference server pins pydantic and opentelemetry versions that clash with Pulumi's,
# so the model servers run from a virtualenv of their own.
INFERENCE_VENV := .venv-inference
STACK ?= dev
REQUIREMENTS := requirements.txt router/requirements.txt router/requirements-test.txt

.PHONY: run token status describe test bench venv clean

# A virtualenv is rebuilt only when its requirements change (the stamp records that).
$(VENV)/.installed: $(REQUIREMENTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(foreach r,$(REQUIREMENTS),-r $(r))
	touch $@

$(INFERENCE_VENV)/.installed: router/requirements-inference.txt
	test -x $(INFERENCE_VENV)/bin/python || $(PYTHON) -m venv $(INFERENCE_VENV)
	$(INFERENCE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r $<
	touch $@

venv: $(VENV)/.installed $(INFERENCE_VENV)/.installed

# Every test; none is skipped for want of the inference server, which is installed first.
test: venv
	ROUTER_INFERENCE_PYTHON=$(CURDIR)/$(INFERENCE_VENV)/bin/python $(PY) -m pytest -q

# Router overhead and throughput against nginx and a bare aiohttp proxy (installs nginx and wrk).
bench: venv
	bench/run.sh

# Serves the stack's services and endpoints on 127.0.0.1 in the foreground (Ctrl-C stops everything).
run: $(VENV)/.installed
	$(PY) -m local run --stack $(STACK)

# A token for a token-auth service of the running stack: make token SERVICE=sentiment
token: $(VENV)/.installed
	$(PY) -m local token --stack $(STACK) --service $(SERVICE)

# Live replicas, load and scaling decisions of the running stack.
status: $(VENV)/.installed
	$(PY) -m local status --stack $(STACK)

# Checks the stack's config offline and says what it describes.
describe: $(VENV)/.installed
	$(PY) -m components.describe Pulumi.$(STACK).yaml

clean:
	rm -rf $(VENV) $(INFERENCE_VENV) .serving build
