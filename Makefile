# Developer entry points. `make test` is what CI runs (via .ci/run).
# Installs use the exact versions of constraints.txt; the package itself declares ranges.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP_INSTALL := $(PY) -m pip install -q -c constraints.txt
PYTEST := $(PY) -m pytest -q

.PHONY: venv test test-fast lint demo wheel

venv: $(VENV)/.installed

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-run only when the package metadata or the pins change; the editable install picks up code.
$(VENV)/.installed: pyproject.toml setup.py constraints.txt | $(PY)
	$(PIP_INSTALL) -e ".[test]"
	touch $@

test: venv
	$(PYTEST)

test-fast: venv
	$(PYTEST) -m "not slow"

lint: venv
	$(VENV)/bin/ruff check .

demo: venv
	$(PY) tools/demo.py --quickstart

# The wheel users install (dist/mvit_tasks-<version>-py3-none-any.whl).
wheel: venv
	$(PY) -m pip wheel --no-deps -w dist .
