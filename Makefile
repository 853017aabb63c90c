# Two commands on a fresh machine (Python 3.11): `make demo` and `make test`. Both create .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-slow lint install clean-results leaderboards example-runs

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

# The offline mini suites: every vision method x 3 generated image tasks (grid + 5 seeds), then four methods on
# the generated data-to-text (tiny GPT-2) and summarisation (tiny BART) tasks (3 seeds); one leaderboard each.
# Leaderboards (Markdown, LaTeX, HTML, CSV, JSON, plots) go to results/leaderboards/demo/.
demo: $(STAMP)
	$(BIN)/bench run --task mini --method all
	$(BIN)/bench leaderboard --suite mini --out results/leaderboards/demo
	$(BIN)/bench run --task mini-nlg --method $(NLG_METHODS)
	$(BIN)/bench leaderboard --suite mini-nlg --out results/leaderboards/demo

NLG_METHODS := deep_share,no_share,lora,full_ft
EXAMPLE_RUNS := results/example-runs

# The committed example leaderboards (results/leaderboards/*) from the committed runs (results/example-runs/);
# tests/test_leaderboard.py checks that this reproduces them byte for byte.
leaderboards: $(STAMP)
	$(BIN)/bench leaderboard --suite mini --results $(EXAMPLE_RUNS) --out results/leaderboards > /dev/null
	$(BIN)/bench leaderboard --suite mini-nlg --results $(EXAMPLE_RUNS) --out results/leaderboards > /dev/null

# Re-create the committed runs themselves (about 10 minutes on 2 cores); then `make leaderboards`.
example-runs: $(STAMP)
	rm -rf $(EXAMPLE_RUNS)
	$(BIN)/bench run --task mini --method all --results $(EXAMPLE_RUNS)
	$(BIN)/bench run --task mini-nlg --method $(NLG_METHODS) --results $(EXAMPLE_RUNS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Minutes-long tests (the whole demo, re-training the mini backbone); not part of `make test`.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check bench methods tests scripts
	$(BIN)/mypy

clean-results:
	rm -rf results/runs results/leaderboards/demo
