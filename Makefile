# The two set-up commands of the README:
#   make lab   - install (from the hash-pinned lock) and open JupyterLab on the quickstart
#   make test  - install (same) and run the whole test suite (tests + tutorial notebooks)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.wiz-installed

.PHONY: lab test lint bench lock clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/01_quickstart.ipynb

# pytest exits 5 when it collected nothing: a run that tests nothing is a failure here.
test: $(STAMP)
	@$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check wiz_jupyter tests bench
	$(BIN)/ruff format --check wiz_jupyter tests bench

bench: $(STAMP)
	$(BIN)/python bench/queue.py

# Regenerate the hash-pinned lock after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --universal \
	  --python-version 3.10 --index-url https://pypi.org/simple -o requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache
