# The VS Code extension's targets; included by the main Makefile (which provides `setup` and PY).
#   make vsix            build/ghostline.vsix (npm ci, typecheck, esbuild bundle, vsce package; offline)
#   make e2e-setup       chromium + code-server 4.139.1 + Node 24 + playwright-core into .cache/e2e (idempotent)
#   make test-extension  unit tests (node:test) + end-to-end test in a real VS Code with the real server and model
#   make run-vscode      VS Code in the browser (code-server) with Ghostline installed: prints the URL, Ctrl+C stops
.PHONY: vsix e2e-setup test-extension test-extension-unit test-e2e run-vscode clean-extension

EXT_NPM_STAMP := node_modules/.ghostline-npm-installed
EXT_VSIX := build/ghostline.vsix
EXT_SOURCES := $(wildcard extension/src/*.ts) package.json package-lock.json esbuild.mjs tsconfig.json .vscodeignore extension/README.md
VSCODE_PORT ?= 8080

$(EXT_NPM_STAMP): package.json $(wildcard package-lock.json)
	if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
	touch $@

$(EXT_VSIX): $(EXT_NPM_STAMP) $(EXT_SOURCES)
	npm run --silent package

vsix: $(EXT_VSIX)

e2e-setup:
	bash extension/scripts/e2e-setup.sh

test-extension-unit: $(EXT_NPM_STAMP)
	npm test

test-e2e: setup e2e-setup $(EXT_VSIX)
	node tests/e2e/run.mjs

test-extension: setup $(EXT_NPM_STAMP) e2e-setup
	npm test
	$(MAKE) --no-print-directory $(EXT_VSIX)
	node tests/e2e/run.mjs

run-vscode: $(EXT_VSIX) e2e-setup
	PORT=$(VSCODE_PORT) node extension/scripts/run-vscode.mjs

clean-extension:
	rm -rf dist out build node_modules .cache/e2e/runs
