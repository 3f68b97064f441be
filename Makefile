# The two commands of the README:
#   make book   set up .venv, execute the notebooks (quick profile, cached) and build the HTML book
#   make test   set up .venv and run everything CI runs
# Everything is installed into .venv from pinned versions (constraints.txt); nothing
# outside the repository is needed beyond a Python 3.10+ with venv.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export COURSE_PROFILE ?= quick

.PHONY: help setup test test-fast book links gpu-check constraints clean

help:
	@echo "make book       build the book into _build/html (sets up .venv first)"
	@echo "make test       run the full test suite, as CI does (sets up .venv first)"
	@echo "make test-fast  unit tests only (no training, notebooks or grading)"
	@echo "make gpu-check  train every agent briefly on the GPU and measure its speed (DEVICE=cpu: tiny CPU profile)"
	@echo "make links      rewrite notebook badges and install cells from _config.yml's repository.url"
	@echo "make clean      remove .venv and build outputs"

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[book,grading,dev,mujoco,ray]"
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(BIN)/python -m pytest -ra --durations=15 tests

test-fast: setup
	$(BIN)/python -m pytest -ra -m "not slow" tests

# Every agent for a short run on the device and the speeds book/results.md quotes (at most 8 minutes
# on one H100); writes runs/gpu-check-$(DEVICE).json. DEVICE=cpu runs the tiny profile, which make test
# also runs (tests/test_gpu_check.py).
DEVICE ?= cuda
gpu-check: setup
	$(BIN)/python -m course_lib gpu-check --device $(DEVICE) --out runs/gpu-check-$(DEVICE).json

links: setup
	$(BIN)/python -m course_lib.book_links

book: setup
	$(BIN)/python -m course_lib.book_links --check
	$(BIN)/jupyter-book build --warningiserror --keep-going .
	@echo ""
	@echo "Book built. Open $(CURDIR)/_build/html/index.html in a browser."

# Re-pin after changing dependencies in pyproject.toml (needs the registry).
constraints:
	rm -rf /tmp/course-constraints-venv
	$(PYTHON) -m venv /tmp/course-constraints-venv
	/tmp/course-constraints-venv/bin/python -m pip install --quiet "torch==2.13.0" -e ".[book,grading,dev,mujoco,ray]"
	( echo "# Exact versions 'make' installs (pip -c). pyproject.toml keeps ranges for Colab and other installs."; \
	  echo "# Regenerate after changing dependencies: make constraints"; \
	  /tmp/course-constraints-venv/bin/python -m pip freeze --exclude-editable | sed 's/+cpu$$//' ) > constraints.txt

clean:
	rm -rf $(VENV) _build assignments/release assignments/submitted assignments/autograded \
	  assignments/feedback assignments/gradebook.db
