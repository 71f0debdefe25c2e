PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test test-slow bench docs clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

# the test suite builds the docs (strict) and runs the notebooks, so it needs both extras
$(TEST_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,docs]'
	touch $@

demo: $(STAMP)
	$(BIN)/lowprec study --out build/study

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -n 2 -q

test-slow: $(TEST_STAMP)
	$(BIN)/python -m pytest -q -m slow

docs: $(TEST_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d site

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/bench_convert.py
	$(BIN)/python benchmarks/bench_gemm.py

clean:
	rm -rf $(VENV) build *.egg-info site
