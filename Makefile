# The two commands a fresh machine needs: `make demo` (the walkthrough on an OCI layout, no registry) and
# `make test` (the whole test suite against real docker-registry processes).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install install-test registry-binary clean

$(BIN)/ci-oras: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	@touch $@

install: $(BIN)/ci-oras

install-test: install
	$(BIN)/pip install -q -e '.[test]'

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

registry-binary:
	@command -v docker-registry >/dev/null || { \
	  echo "installing docker-registry (Debian package)"; \
	  apt-get update -qq && apt-get install -y -qq docker-registry >/dev/null; }

test: install-test registry-binary
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache
