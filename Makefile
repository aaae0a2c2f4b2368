# Two commands work on a fresh machine: `make run` and `make test`. Each sets up what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= dev
REQUIREMENTS := requirements.txt $(wildcard router/requirements.txt router/requirements-test.txt)

.PHONY: run test venv clean

# The virtualenv is rebuilt only when a requirements file changes (the stamp records that).
$(VENV)/.installed: $(REQUIREMENTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(foreach r,$(REQUIREMENTS),-r $(r))
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest -q

# Checks the stack's config and shows what it describes (the local deployment comes with issue 4).
run: venv
	$(PY) -m components.describe Pulumi.$(STACK).yaml

clean:
	rm -rf $(VENV) .serving build
