# Two entry points a newcomer needs (see README "Quick start"):
#   make run    install, then run the commit pipeline end-to-end on the embedded default
#   make test   install, then run every test (unit, integration on 127.0.0.1, infra checkers)
# Everything installs from the committed locks into project-local virtual environments.

PYTHON ?= python3
VENV ?= .venv
CHECKOV_VENV ?= .venv-checkov
PY := $(VENV)/bin/python
UV_VERSION := 0.13.8
UV := $(PYTHON) -m uv
PYTEST_ARGS ?=

.PHONY: run test serve lock bootstrap-uv clean-store

run: $(VENV)/.installed
	$(PY) -m pipeline run

serve: $(VENV)/.installed
	$(PY) -m pipeline serve

test: $(VENV)/.installed $(CHECKOV_VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

bootstrap-uv:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install -q --disable-pip-version-check uv==$(UV_VERSION)

# `python -m uv` targets the interpreter that runs it and ignores VIRTUAL_ENV, so every
# uv call names the environment's interpreter with --python.
$(VENV)/.installed: requirements.lock pyproject.toml
	@$(MAKE) --no-print-directory bootstrap-uv
	$(UV) venv -q --allow-existing $(VENV) --python $(PYTHON)
	$(UV) pip sync -q --python $(VENV)/bin/python requirements.lock
	$(UV) pip install -q --python $(VENV)/bin/python --no-deps -e .
	@touch $@

# checkov lives in its own environment: its pins conflict with the platform's.
$(CHECKOV_VENV)/.installed: requirements-checkov.lock
	@$(MAKE) --no-print-directory bootstrap-uv
	$(UV) venv -q --allow-existing $(CHECKOV_VENV) --python $(PYTHON)
	$(UV) pip sync -q --python $(CHECKOV_VENV)/bin/python requirements-checkov.lock
	@touch $@

lock: bootstrap-uv
	$(UV) pip compile pyproject.toml --extra test --python-version 3.11 -q -o requirements.lock
	$(UV) pip compile requirements-checkov.in --python-version 3.11 -q -o requirements-checkov.lock

clean-store:
	rm -rf .mlops
