# The two commands a fresh machine needs: `make demo` (the walkthrough on an OCI layout, no registry) and
# `make test` (the whole test suite against real docker-registry processes, two pytest-xdist workers).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench install install-test test-tools clean

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

# What the tests drive besides Python: docker-registry, shellcheck and rsync (Debian packages; needs root),
# gitlab-ci-local and the Azure task library/tfx (npm, pinned in the lock files).
test-tools:
	@command -v docker-registry >/dev/null && command -v shellcheck >/dev/null && command -v rsync >/dev/null || { \
	  echo "installing docker-registry, shellcheck, rsync (Debian packages)"; \
	  apt-get update -qq && apt-get install -y -qq docker-registry shellcheck rsync >/dev/null; }
	@[ -d node_modules ] || npm ci --no-audit --no-fund
	@[ -d azure-pipelines/node_modules ] || npm ci --prefix azure-pipelines --no-audit --no-fund

test: install-test test-tools
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

# Issue 9's table against local docker-registry processes (a few minutes; BENCH_ARGS="--image-mib 256" for less):
# writes benchmarks/results.md. Timings stay out of `make test`.
bench: install-test test-tools
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache
