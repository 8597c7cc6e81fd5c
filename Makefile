# Two commands: `make demo` and `make test`. Both create .venv when missing and
# reinstall only when pyproject.toml or the constraints change.
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= constraints.txt
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP_C := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)

.PHONY: demo test install clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml $(CONSTRAINTS) | $(PY)
	$(PY) -m pip install --quiet $(PIP_C) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The main job: the whole LLM-LTM study on the embedded tiny default (cached stages; a second
# run reuses them), then the tables.
demo: $(STAMP)
	$(PY) scripts/run_study.py $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(TEST_ARGS)

clean:
	rm -rf $(VENV) *.egg-info
