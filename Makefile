PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# The versions the suite was verified with (test oracles, tools, runtime deps). Every install
# into .venv goes through it, and the stamps depend on it, so editing a pin reinstalls.
CONSTRAINTS := constraints.txt
PIP := $(BIN)/python -m pip install -q -c $(CONSTRAINTS) --build-constraint $(CONSTRAINTS)

# make test-latest: the newest releases of everything, in their own venv, to see drift on
# purpose. torch stays at the pinned CPU build unless overridden (TORCH= skips it; a bare
# TORCH=torch may download a multi-GB CUDA build).
LATEST := .venv-latest
TORCH ?= torch==2.13.0

.PHONY: demo test test-slow test-latest bench bench-quick docs clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) --upgrade pip setuptools

$(STAMP): pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(PIP) -e .
	touch $@

# the test suite builds the docs (strict) and runs the notebooks, so it needs both extras
$(TEST_STAMP): pyproject.toml $(CONSTRAINTS) $(STAMP)
	$(PIP) -e '.[test,docs]'
	touch $@

demo: $(STAMP)
	$(BIN)/lowprec study --out build/study

# LOWPREC_CONSTRAINTS makes tests/conftest.py refuse to run when an installed package
# differs from its pin (e.g. after a manual pip install into .venv).
# lint-imports checks the layers contract of ARCHITECTURE.md (pyproject's [tool.importlinter])
test: $(TEST_STAMP)
	$(BIN)/lint-imports --no-cache
	LOWPREC_CONSTRAINTS=$(CONSTRAINTS) $(BIN)/python -m pytest -n 2 -q

test-slow: $(TEST_STAMP)
	LOWPREC_CONSTRAINTS=$(CONSTRAINTS) $(BIN)/python -m pytest -q -m slow

test-latest:
	test -x $(LATEST)/bin/python || $(PY) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip
	$(LATEST)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e '.[test,docs]'
	$(if $(TORCH),$(LATEST)/bin/python -m pip install -q '$(TORCH)')
	$(LATEST)/bin/lint-imports --no-cache
	$(LATEST)/bin/python -m pytest -n 2 -q

docs: $(TEST_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d site

# every row of the performance table against its peer, measured in one run; the docs page
# is generated from the run (bench-quick: small sizes, a couple of minutes, no page)
bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/run.py --docs docs/benchmarks.md

bench-quick: $(TEST_STAMP)
	$(BIN)/python benchmarks/run.py --quick

clean:
	rm -rf $(VENV) $(LATEST) build *.egg-info site
