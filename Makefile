# Two commands on a fresh machine (Python 3.11): `make demo` and `make test`. Both create .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo demo-full test test-faults test-slow test-long lint install clean-results leaderboards studies study-runs example-runs

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[all,dev]"
	touch $(STAMP)

# The offline demo (goal: 5 minutes on 2 CPU cores, docs/measurements.md): every vision method on the mini suite and four methods on the
# generated data-to-text task (tiny GPT-2) under the demo protocol (`--protocol demo`: 2 seeds, each method's
# hyper-parameters fixed, no grid search; tasks/mini/_base.yaml says which), their leaderboards
# (results/leaderboards/demo/), and the prefix-length study of the three prefix variants (results/studies/demo/).
# The 90 tiny vision runs go to 2 worker processes of one thread each (77 s instead of 123 s on 2 cores); the
# language runs stay in one process, whose 2 threads they use better than 2 workers would.
demo: $(STAMP)
	$(BIN)/bench run --task mini --method all --protocol demo --workers 2
	$(BIN)/bench leaderboard --suite mini --protocol demo --out results/leaderboards/demo
	$(BIN)/bench run --task mini/e2e --method $(NLG_METHODS) --protocol demo
	$(BIN)/bench leaderboard --suite mini/e2e --protocol demo --out results/leaderboards/demo
	$(BIN)/bench study prefix-length --suite mini/novel_shapes --methods $(PREFIX_METHODS) --lengths 2,8 \
		--cost-steps 5 --protocol demo --out results/studies/demo

# The whole clean protocol on both mini suites (about 25 minutes on 2 cores): every vision method x 3 generated
# image tasks (grid + 5 seeds), four methods on the data-to-text and summarisation tasks (3 seeds); one leaderboard
# each (results/leaderboards/demo-full/), then small versions of the studies (results/studies/demo-full/).
demo-full: $(STAMP)
	$(BIN)/bench run --task mini --method all
	$(BIN)/bench leaderboard --suite mini --out results/leaderboards/demo-full
	$(BIN)/bench run --task mini-nlg --method $(NLG_METHODS)
	$(BIN)/bench leaderboard --suite mini-nlg --out results/leaderboards/demo-full
	$(MAKE) --no-print-directory study-runs STUDY_OUT=results/studies/demo-full STUDY_SUITE=mini/novel_shapes \
		STUDY_LENGTHS=2,8,32 INIT_EXAMPLES=50,200 INIT_SEEDS=101,42

NLG_METHODS := deep_share,no_share,lora,full_ft
PREFIX_METHODS := no_share,simple_share,deep_share
EXAMPLE_RUNS := results/example-runs
STUDY_OUT := results/studies
STUDY_SUITE := mini
STUDY_LENGTHS := 2,4,8,16,32
INIT_EXAMPLES := 50,100,200
INIT_SEEDS := 101,42,44
STUDY_RESULTS := results/runs
STUDY_FLAGS :=

# The studies: run what is missing (unless STUDY_FLAGS=--no-run), write the reports to $(STUDY_OUT).
study-runs: $(STAMP)
	$(BIN)/bench study sample-efficiency --suite $(STUDY_SUITE) --methods $(PREFIX_METHODS) --results $(STUDY_RESULTS) \
		--out $(STUDY_OUT) $(STUDY_FLAGS)
	$(BIN)/bench study prefix-length --suite $(STUDY_SUITE) --methods $(PREFIX_METHODS) --lengths $(STUDY_LENGTHS) --cost-steps 20 \
		--results $(STUDY_RESULTS) --out $(STUDY_OUT) $(STUDY_FLAGS)
	$(BIN)/bench study init --task mini/e2e --methods no_share --examples $(INIT_EXAMPLES) --seeds $(INIT_SEEDS) \
		--results $(STUDY_RESULTS) --out $(STUDY_OUT) $(STUDY_FLAGS)
	$(BIN)/bench analyze attention --task mini/novel_shapes --method deep_share --results $(STUDY_RESULTS) \
		--out $(STUDY_OUT)/attention-mini-novel_shapes-deep_share
	$(BIN)/bench analyze attention --task mini/xsum --method deep_share --results $(STUDY_RESULTS) \
		--out $(STUDY_OUT)/attention-mini-xsum-deep_share

# The committed example leaderboards (results/leaderboards/*) from the committed runs (results/example-runs/);
# tests/test_leaderboard.py checks that this reproduces them byte for byte.
leaderboards: $(STAMP)
	$(BIN)/bench leaderboard --suite mini --results $(EXAMPLE_RUNS) --out results/leaderboards > /dev/null
	$(BIN)/bench leaderboard --suite mini-nlg --results $(EXAMPLE_RUNS) --out results/leaderboards > /dev/null

# The committed study reports (results/studies/*) from the committed runs; tests/test_studies.py checks them.
# The attention analyses need trained.pt files, which are not committed: `make example-runs` re-creates them.
studies: $(STAMP)
	$(BIN)/bench study sample-efficiency --suite $(STUDY_SUITE) --methods $(PREFIX_METHODS) --results $(EXAMPLE_RUNS) --no-run
	$(BIN)/bench study prefix-length --suite $(STUDY_SUITE) --methods $(PREFIX_METHODS) --lengths $(STUDY_LENGTHS) --cost-steps 20 \
		--results $(EXAMPLE_RUNS) --no-run
	$(BIN)/bench study init --task mini/e2e --methods no_share --examples $(INIT_EXAMPLES) --seeds $(INIT_SEEDS) \
		--results $(EXAMPLE_RUNS) --no-run

# Re-create the committed runs themselves, with the study runs and analyses (about 25 minutes on 2 cores);
# then `make leaderboards`.
example-runs: $(STAMP)
	rm -rf $(EXAMPLE_RUNS)
	$(BIN)/bench run --task mini --method all --results $(EXAMPLE_RUNS)
	$(BIN)/bench run --task mini-nlg --method $(NLG_METHODS) --results $(EXAMPLE_RUNS)
	$(MAKE) --no-print-directory study-runs STUDY_RESULTS=$(EXAMPLE_RUNS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The fault-injection suite (kill -9 at 20 points, 4 workers, full disk, damaged files), with its figures; CI runs it.
test-faults: $(STAMP)
	$(BIN)/python -m pytest -q -m faults -s

# The slower tests (seconds to a few minutes each: worker processes, subprocess checks, the wheel, language
# training, re-training the tiny language models); not part of `make test`; CI runs them.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

# Whole-protocol reproductions (the clean mini protocol against the committed runs, re-training the mini ViT):
# tens of minutes; run before a release.
test-long: $(STAMP)
	$(BIN)/python -m pytest -q -m long

# The prepared GPU check, offline, under 8 minutes (scripts/gpu_check.sh): `bench perf methods` and `bench perf data`
# on ViT-B/16 at 224x224, batch 128, bf16 and fp32, with the projected VTAB-1k hours, then a short smoke run; the
# figures go to results/measurements/gpu-check/<gpu>.json and .log, to commit. No $(STAMP) prerequisite: with no
# network, a venv copied onto the GPU machine must be used as it is, never rebuilt. GPU_CHECK_SIZE=tiny: on the CPU.
.PHONY: gpu-check
gpu-check:
	bash scripts/gpu_check.sh

lint: $(STAMP)
	$(BIN)/ruff check bench methods tests scripts
	$(BIN)/mypy

clean-results:
	rm -rf results/runs results/leaderboards/demo results/studies/demo
