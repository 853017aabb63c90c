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

# The offline mini suites: every vision method x 3 generated image tasks (grid + 5 seeds), then four methods on
# the generated data-to-text (tiny GPT-2) and summarisation (tiny BART) tasks (3 seeds); one leaderboard each.
demo: $(STAMP)
	$(BIN)/bench run --task mini --method all
	$(BIN)/bench leaderboard --task mini --out results/leaderboards/mini.md
	$(BIN)/bench run --task mini-nlg --method deep_share,no_share,lora,full_ft
	$(BIN)/bench leaderboard --task mini-nlg --out results/leaderboards/mini-nlg.md

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
