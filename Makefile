# The two set-up commands of the README:
#   make lab   - install (from the hash-pinned lock) and open JupyterLab on the quickstart
#   make test  - install (same) and run the whole test suite (tests + tutorial notebooks)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEPS   := $(VENV)/.wiz-deps
STAMP  := $(VENV)/.wiz-installed
# The JupyterLab extension: TypeScript in labextension/, built (prebuilt, federated) into
# wiz_jupyter/labextension/ with the machine's node (>= 20.19) and npm, from the committed
# package-lock.json (`npm ci`).
LABEXT     := wiz_jupyter/labextension/package.json
NPM_STAMP  := labextension/node_modules/.wiz-npm-ci
LAB_SOURCES := labextension/package.json labextension/tsconfig.json \
               $(wildcard labextension/src/*.ts labextension/style/*)

.PHONY: lab test lint bench lock clean labextension prereqs-build prereqs-test

# 0. what the system must have (scripts/check-prereqs says the one apt-get line if not)
prereqs-build:
	@scripts/check-prereqs build
prereqs-test:
	@scripts/check-prereqs test

# 1. the venv with exactly the locked packages: scripts/install-lock first puts the lock's own
# pip (hash-pinned) in place of the one `python -m venv` bundles, then installs the lock.
$(DEPS): requirements.lock scripts/install-lock
	$(PYTHON) -m venv $(VENV)
	scripts/install-lock $(BIN)/python
	touch $(DEPS)

# 2. the lab extension (its builder, jupyter-builder, comes with jupyterlab in the venv).
# make installs its npm packages with `npm ci` (exactly package-lock.json).
$(NPM_STAMP): labextension/package-lock.json | prereqs-build
	cd labextension && npm ci --no-audit --no-fund --loglevel=error
	touch $(NPM_STAMP)

# the same build:prod a wheel's build hook runs (pyproject's hatch-jupyter-builder section)
$(LABEXT): $(NPM_STAMP) $(LAB_SOURCES) | $(DEPS)
	cd labextension && PATH="$(abspath $(BIN)):$$PATH" npm run --silent build:prod
	touch $(LABEXT)

labextension: $(LABEXT)

# 3. wiz_jupyter itself, editable. Its wheel's shared data puts the built lab extension in
# .venv/share/jupyter/labextensions/wiz-jupyter and switches the server extension on in
# .venv/etc/jupyter/jupyter_server_config.d/, as a released wheel does; so this step runs
# again after each rebuild of the extension.
$(STAMP): $(DEPS) $(LABEXT) pyproject.toml install.json jupyter-config/jupyter_server_config.d/wiz_jupyter.json
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

lab: prereqs-build $(STAMP)
	$(BIN)/jupyter lab notebooks/01_quickstart.ipynb

# pytest exits 5 when it collected nothing: a run that tests nothing is a failure here.
test: prereqs-test $(STAMP)
	@$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check wiz_jupyter tests bench
	$(BIN)/ruff format --check wiz_jupyter tests bench

bench: $(STAMP)
	$(BIN)/python bench/queue.py

# Regenerate the hash-pinned lock after changing dependencies in pyproject.toml.
lock: $(DEPS)
	$(BIN)/uv pip compile pyproject.toml --all-extras --generate-hashes --universal \
	  --python-version 3.10 --index-url https://pypi.org/simple -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache labextension/node_modules labextension/lib \
	  labextension/tsconfig.tsbuildinfo wiz_jupyter/labextension
