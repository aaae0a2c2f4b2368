# Two commands work on a fresh machine: `make run` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The Azure ML inference server pins pydantic and opentelemetry versions that clash with Pulumi's,
# so the model servers run from a virtualenv of their own.
INFERENCE_VENV := .venv-inference
# pulumi-policy pins protobuf 5 and the program protobuf 6, so the CrossGuard pack runs from a virtualenv of
# its own (policies/PulumiPolicy.yaml points `pulumi preview --policy-pack policies` at the same one).
POLICY_VENV := .venv-policies
# checkov pins packaging<24 and Pulumi needs >=26, so the manifest scanner has a virtualenv of its own too.
CHECKOV_VENV := .venv-checkov
STACK ?= dev
REQUIREMENTS := requirements.txt router/requirements.txt router/requirements-test.txt fetcher/requirements.txt
# mypy, whose mypyc compiles the router's request path (`make native`).
REQUIREMENTS += router/requirements-build.txt
# check-jsonschema, for the workflow files in .github/ (its schemas ship in the package).
REQUIREMENTS += tools/requirements-workflows.txt
# numpy and pandas, for the v1 runtime package's tests (tests/v1runtime/).
REQUIREMENTS += tests/v1runtime/requirements.txt
# Azurite (Microsoft's storage emulator, from npm) stands in for Azure Storage in the fetcher's tests.
TOOLS := .tools
AZURITE_VERSION := 3.35.0

.PHONY: run token status logs keys regen-key import-v1 describe test bench bench-program bench-bytecodes bench-instructions venv native clean

# A virtualenv is rebuilt only when its requirements change (the stamp records that).
$(VENV)/.installed: $(REQUIREMENTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(foreach r,$(REQUIREMENTS),-r $(r))
	touch $@

$(INFERENCE_VENV)/.installed: router/requirements-inference.txt
	test -x $(INFERENCE_VENV)/bin/python || $(PYTHON) -m venv $(INFERENCE_VENV)
	$(INFERENCE_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r $<
	touch $@

$(POLICY_VENV)/.installed: policies/requirements.txt
	test -x $(POLICY_VENV)/bin/python || $(PYTHON) -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r $<
	touch $@

$(CHECKOV_VENV)/.installed: tools/requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r $<
	touch $@

$(TOOLS)/.installed-azurite-$(AZURITE_VERSION):
	command -v npm >/dev/null || (apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null)
	npm install --silent --no-fund --no-audit --prefix $(TOOLS) azurite@$(AZURITE_VERSION)
	touch $@

# The router's request path compiled with mypyc (router/build_native.py), as the router image runs it;
# rebuilt when a router source changes. `python router/build_native.py --clean` goes back to interpreted.
router/native-sources.txt: $(VENV)/.installed router/mypy.ini $(wildcard router/*.py router/http/*.py)
	command -v gcc >/dev/null || (apt-get update -qq && apt-get install -y -qq gcc libc6-dev >/dev/null)
	$(PY) router/build_native.py

native: router/native-sources.txt

venv: $(VENV)/.installed $(INFERENCE_VENV)/.installed $(POLICY_VENV)/.installed $(CHECKOV_VENV)/.installed $(TOOLS)/.installed-azurite-$(AZURITE_VERSION)

# Every test; none is skipped for want of the inference server, which is installed first.
test: venv native
	ROUTER_INFERENCE_PYTHON=$(CURDIR)/$(INFERENCE_VENV)/bin/python $(PY) -m pytest -q

# Router overhead and throughput against nginx and the floor of its own stack (installs nginx and wrk).
bench: venv native
	bench/run.sh

# The Pulumi program's own cost (wall time, peak RSS) under mocks for 1, 100 and 1,000 services.
bench-program: $(VENV)/.installed
	$(PY) bench/program_cost.py

# The same comparison in bytecodes per service (20 -> 60 services), which CPU steal cannot move.
bench-bytecodes: $(VENV)/.installed
	$(PY) bench/program_cost.py --bytecodes 20,60

# And in machine instructions under valgrind (20 -> 60 services): deterministic, the C and the GC included.
bench-instructions: $(VENV)/.installed
	command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind >/dev/null)
	$(PY) bench/program_cost.py --instructions 20,60

# The offline pull-request check (no cloud, no Pulumi CLI): the program under mocks, the policy pack,
# kubernetes-validate and checkov; writes build/$(STACK)/ and fails on a violation. make check STACK=prod
.PHONY: check
check: $(VENV)/.installed $(POLICY_VENV)/.installed $(CHECKOV_VENV)/.installed
	$(PY) -m tools.check --stack $(STACK)

# Serves the stack's services and endpoints on 127.0.0.1 in the foreground (Ctrl-C stops everything).
run: $(VENV)/.installed native
	$(PY) -m local run --stack $(STACK)

# A token for a token-auth service of the running stack: make token SERVICE=sentiment
token: $(VENV)/.installed
	$(PY) -m aks_serving token $(SERVICE) --local --stack $(STACK)

# Live replicas, load and scaling decisions of the running stack, redrawn until Ctrl-C.
status: $(VENV)/.installed
	$(PY) -m aks_serving status --local --stack $(STACK) --watch

# A service's replica logs of the running stack: make logs SERVICE=diabetes [VERSION=v2] [TAIL=50] [FOLLOW=1]
logs: $(VENV)/.installed
	$(PY) -m aks_serving logs $(SERVICE) --local --stack $(STACK) $(if $(VERSION),--version $(VERSION)) \
		$(if $(TAIL),--tail $(TAIL)) $(if $(FOLLOW),--follow)

# A key-auth service's keys (v1's get_keys): make keys SERVICE=diabetes
keys: $(VENV)/.installed
	$(PY) -m aks_serving keys $(SERVICE) --local --stack $(STACK)

# Replaces one key; clients on the other keep working (v1's regen_key): make regen-key SERVICE=diabetes KEY=primary
regen-key: $(VENV)/.installed
	$(PY) -m aks_serving regen-key $(SERVICE) $(KEY) --local --stack $(STACK)

# A v1 deployment (az ml model deploy -dc/-ic/-m, the AKS compute's settings) as Pulumi.$(STACK).yaml; README,
# "Bringing your v1 deployment". MODELS: name:version=path ...; MERGE=Pulumi.dev.yaml adds to that file instead.
import-v1: $(VENV)/.installed
	$(PY) -m v1import --stack $(STACK) --deployment-config $(DC) --inference-config $(IC) \
		$(foreach m,$(MODELS),--model $(m)) $(if $(COMPUTE),--compute $(COMPUTE)) $(if $(SERVICE),--service $(SERVICE)) \
		$(if $(MERGE),--merge $(MERGE)) $(ARGS)

# Checks the stack's config offline and says what it describes.
describe: $(VENV)/.installed
	$(PY) -m components.describe Pulumi.$(STACK).yaml

clean:
	-$(PY) router/build_native.py --clean
	rm -rf $(VENV) $(INFERENCE_VENV) $(POLICY_VENV) $(CHECKOV_VENV) $(TOOLS) .serving build
