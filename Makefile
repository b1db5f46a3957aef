# Developer entry points. `make test` is what CI runs (via .ci/run).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(PY) -m pytest -q

.PHONY: venv test test-fast demo

venv: $(VENV)/.installed

$(PY):
	$(PYTHON) -m venv $(VENV)

# Re-run only when the package metadata changes; the editable install picks up code changes.
$(VENV)/.installed: setup.py | $(PY)
	$(PY) -m pip install -q -e ".[test]"
	touch $@

test: venv
	$(PYTEST)

test-fast: venv
	$(PYTEST) -m "not slow"

demo: venv
	$(PY) tools/demo.py --quickstart
