# Two commands on a fresh machine (Python 3.11): `make demo` and `make test`. Both create .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-slow lint install clean-results

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

# The offline mini suite: every available method x 3 generated tasks, grid + 5 seeds, then the leaderboard.
demo: $(STAMP)
	$(BIN)/bench run --task mini --method all
	$(BIN)/bench leaderboard --task mini --out results/leaderboards/mini.md

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Minutes-long tests (the whole demo, re-training the mini backbone); not part of `make test`.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check bench methods tests scripts
	$(BIN)/mypy

clean-results:
	rm -rf results/runs results/leaderboards
