# Two commands: `make demo` and `make test`. Both create .venv when missing and
# reinstall only when pyproject.toml or the constraints change.
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= constraints.txt
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP_C := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)

.PHONY: demo test test-bf16 install clean natural-corpus books gpu-check

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

# One pytest-xdist worker per core (each computes on its share of the threads: tests/conftest.py);
# TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) $(TEST_ARGS)

# The suite as on a CPU with native bf16 (AVX512-BF16/AMX), where train.precision: auto picks bf16:
# any machine can check that the results the tests pin do not depend on the CPU kind.
test-bf16: $(STAMP)
	LTM_GYM_CPU_BF16=1 $(PY) -m pytest -q -n $(TEST_WORKERS) $(TEST_ARGS)

# Optional, never needed by `make test`: natural text for the smollm2-gimp-help preset, the GIMP
# manual's linked HTML pages from Debian's mirror (a package registry; nothing is installed system-wide:
# the .deb is unpacked under data/debian), turned into linked-context records data/$(NATURAL_PKG).jsonl.
# Another manual: make natural-corpus NATURAL_PKG=debian-faq-ru NATURAL_HTML=usr/share/doc/debian/FAQ/ru
NATURAL_PKG ?= gimp-help-en
NATURAL_HTML ?= usr/share/gimp/2.0/help/en
natural-corpus: $(STAMP)
	mkdir -p data/debian
	cd data/debian && (ls $(NATURAL_PKG)_*.deb >/dev/null 2>&1 || apt-get download $(NATURAL_PKG))
	dpkg -x data/debian/$(NATURAL_PKG)_*.deb data/debian/$(NATURAL_PKG)
	$(PY) scripts/build_linked_corpus.py data/debian/$(NATURAL_PKG)/$(NATURAL_HTML) data/$(NATURAL_PKG).jsonl

# On a CUDA machine: the tests that need CUDA and one table of speeds and peak memory (a few
# minutes on one GPU); elsewhere it says it needs CUDA and exits 0. GPU_PYTHON: an interpreter that
# already has a CUDA torch (e.g. a GPU image's python3, with the package's other wheels beside it).
GPU_PYTHON ?= $(PY)
gpu-check:
	$(if $(filter $(PY),$(GPU_PYTHON)),$(MAKE) install,true)
	$(GPU_PYTHON) scripts/gpu_check.py $(GPU_ARGS)

# Optional, never needed by `make test`: rebuild the shipped book text (the bAbI tasks' background,
# ltm_gym/data/austen.json.gz) from Debian's r-cran-janeaustenr, unpacked under data/debian.
books: $(STAMP)
	mkdir -p data/debian
	cd data/debian && (ls r-cran-janeaustenr_*.deb >/dev/null 2>&1 || apt-get download r-cran-janeaustenr)
	dpkg -x data/debian/r-cran-janeaustenr_*.deb data/debian/janeaustenr
	$(PY) -m pip install --quiet $(PIP_C) rdata
	$(PY) scripts/build_books.py data/debian/janeaustenr

clean:
	rm -rf $(VENV) *.egg-info
