# Ghostline: `make run` sets everything up and runs the product; `make test` sets up and runs all tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc)
LLAMA_SPEC := $(shell grep -o 'llama-cpp-python==[0-9.]*' pyproject.toml)
LLAMA_BUILD := $(VENV)/.llama-build
# llama.cpp is compiled for this CPU (-march=native). Some VMs advertise AMX in cpuid while the kernel
# refuses its tile registers, and such a build dies with SIGILL at the first matrix multiply: never use AMX.
ifeq ($(shell uname -m),x86_64)
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
export CMAKE_ARGS ?= -DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'
endif

.PHONY: setup venv llama model test test-python run demo eval clean help
.DEFAULT_GOAL := help

help:
	@echo "make run      set up and run Ghostline (VS Code in the browser with the extension)"
	@echo "make demo     set up and complete a sample file through a real LSP client"
	@echo "make test     set up and run every test"
	@echo "make eval     FIM benchmark: pipeline vs naive baseline (python -m training.evaluate)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip wheel

# llama-cpp-python compiles (~3-5 min) once, and again only when its version or build flags change
# (--no-cache-dir: pip's wheel cache does not know about build flags).
llama: | $(PY)
	@if [ "$$(cat $(LLAMA_BUILD) 2>/dev/null)" != "$(LLAMA_SPEC) $$CMAKE_ARGS" ]; then \
	  echo "building $(LLAMA_SPEC) for this CPU (about 5 minutes)"; \
	  $(PY) -m pip install --disable-pip-version-check --progress-bar off --no-cache-dir --force-reinstall \
	    --no-deps '$(LLAMA_SPEC)' && echo "$(LLAMA_SPEC) $$CMAKE_ARGS" > $(LLAMA_BUILD); fi

# The rest of the venv is updated when the dependency list changes.
$(STAMP): pyproject.toml | llama
	$(PY) -m pip install --disable-pip-version-check --progress-bar off -e '.[train,test]'
	touch $@

venv: $(STAMP)

model: $(STAMP)
	$(PY) -m server.models pull

setup: venv model

test-python: setup
	$(PY) -m ruff check .
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
