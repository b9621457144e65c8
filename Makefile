# The two entry points of the README: `make check` (the main job) and `make test`.
# Each creates or reuses .venv and installs what it needs, pinned by constraints.txt.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# NO_ENGINES=1 leaves out the Flax and ONNX Runtime extras: their backends are then skipped.
ENGINE_EXTRAS := $(if $(NO_ENGINES),,flax,onnxruntime,)
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)$(if $(NO_ENGINES),-no-engines)
REPORT_DIR ?= reports
# pytest processes side by side in `make check` (normspec check --workers): one per core here
WORKERS ?= 2
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install check test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[torch,tensorflow,$(ENGINE_EXTRAS)dev,envelope,bench]'
	@rm -f $(VENV)/.installed-* && touch $@

# The conformance gate over every built-in backend; refreshes reports/.
check: $(STAMP)
	$(VENV)/bin/normspec check --workers $(WORKERS) --report-dir $(REPORT_DIR) $(ARGS)

# normspec's own tests (the spec, the tolerance model, the adapters, the CLI, the planted bugs).
test: $(STAMP)
	$(PY) -m pytest tests -q -p no:cacheprovider $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .hypothesis
