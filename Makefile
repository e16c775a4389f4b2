# The two commands a fresh machine needs: `make demo` (the walkthrough on an OCI layout, no registry) and
# `make test` (ruff, mypy and the whole test suite against real docker-registry processes, three pytest-xdist
# workers: most tests wait on subprocesses and registries, so three keep two cores busy; a fourth finishes no
# sooner and spends some 40 s more CPU on contention, which another job on the machine would feel).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench install install-test test-tools lock check-lock clean stress-referrers

$(BIN)/ci-oras: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	@touch $@

install: $(BIN)/ci-oras

# check-jsonschema (validates the wrappers offline against its vendored GitHub, GitLab and Azure schemas) lives
# in a venv of its own: it brings click, and httpx imports its command-line client (click, rich) whenever click
# is importable, some 60 ms of CPU in every ci-oras process the tests start from $(VENV). Where the wrappers
# install ci-oras, no click is installed either.
TOOLS_VENV ?= .venv-tools
SCHEMA_CHECKER := check-jsonschema>=0.39,<0.40

$(TOOLS_VENV)/bin/check-jsonschema:
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install -q '$(SCHEMA_CHECKER)'

install-test: install $(TOOLS_VENV)/bin/check-jsonschema
	$(BIN)/pip install -q -e '.[test]'

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

# What the tests drive besides Python: docker-registry, shellcheck, rsync and chromium (Debian packages; needs
# root), gitlab-ci-local, mermaid-cli and the Azure task library/tfx (npm, pinned in the lock files).
test-tools:
	@command -v docker-registry >/dev/null && command -v shellcheck >/dev/null && command -v rsync >/dev/null \
	  && command -v chromium >/dev/null || { \
	  echo "installing docker-registry, shellcheck, rsync, chromium (Debian packages)"; \
	  apt-get update -qq && apt-get install -y -qq docker-registry shellcheck rsync chromium >/dev/null; }
	@[ -d node_modules ] || npm ci --no-audit --no-fund
	@[ -d azure-pipelines/node_modules ] || npm ci --prefix azure-pipelines --no-audit --no-fund

# requirements/runtime.lock: the runtime dependencies with the hashes of their wheels for every supported Python and
# platform, which every wrapper installs with --require-hashes (see requirements/lock.py). Run `make lock` after
# changing pyproject.toml's dependencies. check-lock also fails when a ci_oras module imports what no pin provides.
lock: install-test
	$(BIN)/python requirements/lock.py
	$(BIN)/python -m ci_oras.wrappers.generate  # the GitLab and Azure YAML templates carry the lock inline

check-lock: install-test
	$(BIN)/python requirements/lock.py --check

test: install-test test-tools
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n 3 --dist loadgroup

# Every benchmark case (start-up, attach, discover, promote, parallel attaches, 1 GiB) against local
# docker-registry processes, a few minutes (BENCH_ARGS="--image-mib 256" for less): writes
# benchmarks/results.md. Timings stay out of `make test`.
bench: install-test test-tools
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

# Referrer writes under many parallel CI jobs: 20 and 50 attach processes released at once on one subject,
# ten rounds each, on docker-registry and on an API registry that drops list updates (`make test` runs one
# round of 20).
stress-referrers: install-test test-tools
	CI_ORAS_KILL_POINTS=all $(BIN)/python -m pytest -q tests/integration/test_promote.py -k killed
	CI_ORAS_RELEASE_KILLS=20 $(BIN)/python -m pytest -q tests/integration/test_release.py -k killed
	CI_ORAS_CONCURRENCY_ATTACHERS=20 CI_ORAS_CONCURRENCY_REPETITIONS=10 \
	  $(BIN)/python -m pytest -q tests/integration/test_referrers_concurrency.py -k parallel
	CI_ORAS_CONCURRENCY_ATTACHERS=50 CI_ORAS_CONCURRENCY_REPETITIONS=10 \
	  $(BIN)/python -m pytest -q tests/integration/test_referrers_concurrency.py -k parallel

clean:
	rm -rf $(VENV) $(TOOLS_VENV) build dist *.egg-info .pytest_cache .mypy_cache

# `make stress` = the auth matrix five times (stress-auth) plus the parallel-attach rounds (stress-referrers).
# The auth x concurrency matrix (tests/integration/test_auth_matrix.py) five times in a row, fresh registries
# each run, stopping at the first failure: a race that shows once in five runs is a bug, not a flake. It adds
# concurrency 32 (32 runs at once on each registry) to the 1 and 8 that `make test` runs.
# CI=true: a missing docker-registry fails instead of skipping.
STRESS_RUNS ?= 5
.PHONY: stress stress-auth
stress: stress-auth stress-referrers

stress-auth: install-test
	@command -v docker-registry >/dev/null || { echo "stress needs docker-registry: make test-tools" >&2; exit 1; }
	@for run in $$(seq 1 $(STRESS_RUNS)); do \
	  echo "stress: run $$run of $(STRESS_RUNS)"; \
	  CI=true CI_ORAS_AUTH_MATRIX_CONCURRENCY=1,8,32 $(BIN)/python -m pytest -q -x -p no:cacheprovider \
	    --basetemp="$${TMPDIR:-/tmp}/ci-oras-stress" tests/integration/test_auth_matrix.py || exit 1; \
	done
