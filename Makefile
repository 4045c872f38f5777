# Ghostline: `make run` sets everything up and runs the product; `make test` sets up and runs all tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc)

.PHONY: setup venv model test test-python run demo eval clean help
.DEFAULT_GOAL := help

help:
	@echo "make run      set up and run Ghostline (VS Code in the browser with the extension)"
	@echo "make demo     set up and complete a sample file through a real LSP client"
	@echo "make test     set up and run every test"
	@echo "make eval     FIM benchmark: pipeline vs naive baseline (python -m training.evaluate)"

# The venv is rebuilt when the dependency list changes; llama-cpp-python compiles (~3-5 min) once.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip wheel
	$(PY) -m pip install --disable-pip-version-check --progress-bar off -e '.[train,test]'
	touch $@

venv: $(STAMP)

model: $(STAMP)
	$(PY) -m server.models pull

setup: venv model

test-python: setup
	GHOSTLINE_REQUIRE_MODEL=1 $(PY) -m pytest -q -ra

demo: setup
	$(PY) examples/lsp_client_demo.py examples/sample.py

eval: setup
	$(PY) -m training.evaluate

-include extension.mk

# The extension's targets (extension.mk) add themselves when present.
test: test-python $(if $(wildcard extension.mk),test-extension)

run: setup $(if $(wildcard extension.mk),run-vscode,demo)

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
