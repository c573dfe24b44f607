# One source of truth for setting up, serving, linting and testing; README and .ci/run call these.
# Python >= 3.11 for the service (pyproject.toml); the tflite-runtime test leg needs Python <= 3.11.

PYTHON ?= python3
VENV ?= .venv
MODELS_FROM ?= $(EDGE_MODELS_FROM)
TEST_MODELS ?= ../shared/models
PULL_FROM = $(if $(MODELS_FROM),--from $(MODELS_FROM),)

.PHONY: serve setup test test-deps test-litert test-tflite lint docs bench bench-compare clean deploy-check prove \
	prove-container prove-systemd prove-swarm

## serve: set up the venv, pull the default model (sha256-verified) and start the service
serve: setup
	EDGE_DATA_DIR=$${EDGE_DATA_DIR:-$(CURDIR)/data} $(VENV)/bin/edge-server serve

setup: $(VENV)/.installed
	$(VENV)/bin/edge-server models pull $(PULL_FROM)
	@# The embedding model learned classes are built on (3 MB); the service serves without it.
	-$(VENV)/bin/edge-server models pull embedder $(PULL_FROM)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	@# The cameras extra always (PyAV, ~100 MB installed): adding a camera is a setting, not a reinstall.
	$(VENV)/bin/pip install --quiet ".[cameras]"
	touch $@

## test: lint, then the whole suite under LiteRT (numpy 2) and under tflite-runtime (numpy < 2);
## first installs the Debian packages the tests run (as root), or stops with the command to run
test: test-deps lint test-litert test-tflite

test-deps:
	deploy/test-deps.sh

.venv-litert/.installed: pyproject.toml
	$(PYTHON) -m venv .venv-litert
	.venv-litert/bin/pip install --quiet --upgrade pip
	.venv-litert/bin/pip install --quiet -e ".[dev,bench]" "numpy>=2"
	touch $@

.venv-tflite/.installed: pyproject.toml
	$(PYTHON) -m venv .venv-tflite
	.venv-tflite/bin/pip install --quiet --upgrade pip
	.venv-tflite/bin/pip install --quiet -e ".[dev,bench,tflite]" "numpy<2"
	touch $@

## lint: ruff, mypy --strict, the import contracts (the layers) and the docs site built strictly
lint: .venv-litert/.installed
	.venv-litert/bin/ruff check edge_server tests benchmarks deploy
	.venv-litert/bin/ruff format --check edge_server tests benchmarks deploy
	.venv-litert/bin/mypy
	.venv-litert/bin/lint-imports
	.venv-litert/bin/mkdocs build --strict --site-dir build/site

## docs: regenerate the settings reference from the settings models, then build the site
docs: .venv-litert/.installed
	.venv-litert/bin/python -m edge_server.config.reference docs/reference/settings.md
	.venv-litert/bin/mkdocs build --strict --site-dir build/site

test-litert: test-deps .venv-litert/.installed
	# The same pull mechanism a user runs, from the shared models folder (read-only in CI).
	.venv-litert/bin/edge-server models pull --from $(TEST_MODELS)
	EDGE_RUNTIME=litert EDGE_TEST_MODELS_DIR=$(TEST_MODELS) .venv-litert/bin/python -m pytest

# The LAN surfaces and deployment checks do not depend on the runtime: they run once, above.
test-tflite: test-deps .venv-tflite/.installed
	EDGE_RUNTIME=tflite EDGE_TEST_MODELS_DIR=$(TEST_MODELS) .venv-tflite/bin/python -m pytest -m "not lan"

## deploy-check: static checks of Dockerfile.arm64 and systemd/ (hadolint, shellcheck,
## systemd-analyze verify and offline exposure score); installs the apt tools it needs
deploy-check: .venv-litert/.installed
	deploy/host-tools.sh static
	PATH="$(CURDIR)/.venv-litert/bin:$$PATH" deploy/check-static.sh

## prove: the arm64 image under qemu, the systemd unit in a booted Debian and the stack on a
## two-node Docker Swarm behind HAProxy (root; see README)
prove: prove-systemd prove-container prove-swarm

prove-container:
	deploy/host-tools.sh
	deploy/prove-container.sh

prove-systemd:
	deploy/host-tools.sh
	deploy/prove-systemd.sh

prove-swarm:
	deploy/host-tools.sh swarm
	deploy/prove-swarm.sh

## bench: the side-by-side benchmark (limit, service, naive) on the default model; a few minutes
bench: setup
	$(VENV)/bin/pip install --quiet ".[bench]"
	$(VENV)/bin/python -m benchmarks $(BENCH_ARGS)

## bench-compare: this tree's service against BASELINE's (a git revision), side by side in one
## run: p50 and throughput ratios (make bench-compare BASELINE=HEAD~3)
bench-compare: .venv-litert/.installed
	.venv-litert/bin/python -m benchmarks.compare --baseline $(BASELINE) --models-dir $(TEST_MODELS) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .venv-litert .venv-tflite .pytest_cache .mypy_cache .ruff_cache
