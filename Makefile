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

# The main job. Until the LLM-LTM study pipeline lands, the smallest real study the package runs:
# a short looped-transformer regression run with its evaluation against least squares.
DEMO_CMD ?= $(PY) scripts/train_looped.py --config looped-cpu --set train.steps=300 --set eval.n_prompts=256 --set eval.n_loops=24

demo: $(STAMP)
	@echo "demo: a short looped-transformer run (the LLM-LTM study pipeline is not in this build yet)"
	$(DEMO_CMD) $(DEMO_ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(TEST_ARGS)

clean:
	rm -rf $(VENV) *.egg-info
