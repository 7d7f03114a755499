# Two entry points a newcomer needs (see README "Quick start"):
#   make run    install, then run the commit pipeline end-to-end on the embedded default
#   make test   install, then run every test (unit, integration on 127.0.0.1, infra checkers)
# Everything installs from the committed locks into project-local virtual environments.
# The images and their contract tests (needs root or sudo: podman, buildah and debootstrap
# come from Debian's packages, installed by the target itself):
#   make images       build serving, training and MLflow images from their Dockerfiles
#   make image-test   build them, then run each under the contract it ships for

PYTHON ?= python3
VENV ?= .venv
CHECKOV_VENV ?= .venv-checkov
PARLIAMENT_VENV ?= .venv-parliament
PY := $(VENV)/bin/python
UV_VERSION := 0.13.8
# uv lives in its own small venv: `pip install` into Debian's system Python is refused
# (PEP 668, "externally-managed-environment").
UV_VENV ?= .venv-uv
UV := $(UV_VENV)/bin/uv
PYTEST_ARGS ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint serve lock bootstrap-uv clean-store image-tools images image-test

run: $(VENV)/.installed
	$(PY) -m pipeline run

serve: $(VENV)/.installed
	$(PY) -m pipeline serve

test: $(VENV)/.installed $(CHECKOV_VENV)/.installed $(PARLIAMENT_VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)

# ruff and mypy, configured in pyproject.toml and pinned in the test extra; no network.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bootstrap-uv:
	@$(UV) --version 2>/dev/null | grep -q " $(UV_VERSION)" || { \
	  $(PYTHON) -m venv $(UV_VENV) && \
	  $(UV_VENV)/bin/pip install -q --disable-pip-version-check uv==$(UV_VERSION); }

# Every uv call names the environment's interpreter with --python. --compile-bytecode
# writes every module's bytecode at install: where PYTHONDONTWRITEBYTECODE is set (CI
# machines) Python otherwise recompiles MLflow, pandas and XGBoost in every process,
# which made each `python -m pipeline` start seconds slower.
$(VENV)/.installed: requirements.lock pyproject.toml
	@$(MAKE) --no-print-directory bootstrap-uv
	$(UV) venv -q --allow-existing $(VENV) --python $(PYTHON)
	$(UV) pip sync -q --require-hashes --compile-bytecode --python $(VENV)/bin/python requirements.lock
	$(UV) pip install -q --python $(VENV)/bin/python --no-deps -e .
	@touch $@

# checkov lives in its own environment: its pins conflict with the platform's.
$(CHECKOV_VENV)/.installed: requirements-checkov.lock
	@$(MAKE) --no-print-directory bootstrap-uv
	$(UV) venv -q --allow-existing $(CHECKOV_VENV) --python $(PYTHON)
	$(UV) pip sync -q --require-hashes --compile-bytecode --python $(CHECKOV_VENV)/bin/python requirements-checkov.lock
	@touch $@

# parliament (the IAM checker, infra/iam_check.py) too: it needs boto3 and setuptools pins
# of its own.
$(PARLIAMENT_VENV)/.installed: requirements-parliament.lock
	@$(MAKE) --no-print-directory bootstrap-uv
	$(UV) venv -q --allow-existing $(PARLIAMENT_VENV) --python $(PYTHON)
	$(UV) pip sync -q --require-hashes --compile-bytecode --python $(PARLIAMENT_VENV)/bin/python requirements-parliament.lock
	@touch $@

# Without --upgrade, uv keeps every version the existing lock pins and resolves only what
# is new; --generate-hashes records every artifact's sha256, and `uv pip sync
# --require-hashes` refuses a download that does not match.
lock: bootstrap-uv
	$(UV) pip compile pyproject.toml --extra test --python-version 3.11 --generate-hashes -q -o requirements.lock
	$(UV) pip compile requirements-checkov.in --python-version 3.11 --generate-hashes -q -o requirements-checkov.lock
	$(UV) pip compile requirements-parliament.in --python-version 3.11 --generate-hashes -q -o requirements-parliament.lock
	for image in serving training; do \
	  $(UV) pip compile $$image/requirements.txt -c requirements.lock --python-version 3.11 \
	    --python-platform x86_64-manylinux_2_28 --generate-hashes -q -o $$image/requirements.lock || exit 1; done
	$(UV) pip compile infra/mlflow/requirements.in -c requirements.lock --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --generate-hashes -q -o infra/mlflow/requirements.lock

# Debian's podman/buildah build and run the images (there is no Docker engine here);
# runc because crun refuses this host's cgroup layout; PostgreSQL for the MLflow image's test.
image-tools:
	@command -v podman >/dev/null && command -v buildah >/dev/null && command -v runc >/dev/null \
	  && command -v debootstrap >/dev/null && [ -x /usr/lib/postgresql/15/bin/postgres ] || { \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q \
	    podman buildah runc debootstrap postgresql-15 openssl >/dev/null; }

# Test images only: the base is a local stand-in for the official Python image (see images/).
images: image-tools
	$(SUDO) bash images/build.sh

image-test: images $(VENV)/.installed
	$(SUDO) env MLOPS_REQUIRE_IMAGES=1 $(PY) -m pytest tests/images $(PYTEST_ARGS)

clean-store:
	rm -rf .mlops
