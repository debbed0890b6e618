# Two commands do all the set-up on a fresh machine:
#   make run   - create .venv if missing, install the pinned dependencies, start Vignette on the sample novel
#   make test  - same venv, the whole test suite
# Both are idempotent: the install step re-runs only when a requirements file changes.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: run test test-fast install chat bench clean-data

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -c constraints.txt -r requirements.txt -r requirements-dev.txt
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) app.py

chat: $(STAMP)
	$(PY) -m bot chat --book sample

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# The inner loop: everything but the browser, `chroma run` server, subprocess and whole-novel tests.
test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not browser and not server and not system" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m eval.bench ingest data/sample-novel.txt
