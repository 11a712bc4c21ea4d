# Two commands: `make run` (set up, then run the default show) and `make test`; `make lint` for
# ruff and mypy (both configured in pyproject.toml).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.jadong-setup
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: setup run test lint bench clean-venv

setup: $(STAMP)

$(STAMP): scripts/setup.sh requirements.txt requirements-dev.txt pyproject.toml
	bash scripts/setup.sh
	@touch $(STAMP)

run: setup
	$(PY) run.py $(ARGS)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check installation tests
	$(PY) -m mypy

bench: setup
	$(PY) -m installation.bench engine
	$(PY) -m installation.bench speech
	$(PY) -m installation.bench osc

clean-venv:
	rm -rf $(VENV)
