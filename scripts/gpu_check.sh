#!/usr/bin/env bash
# One prepared GPU check (`make gpu-check`), offline, in under 8 minutes: `bench perf methods` and `bench perf data`
# on ViT-B/16 at 224x224, batch 128, in bf16 and fp32 (with the projected hours of the whole VTAB-1k protocol), then
# a short smoke run of a prefix method on generated 224x224 images. The figures go to
# results/measurements/gpu-check/<machine>.json (+ <machine>.log, the whole output), named after the GPU
# (`nvidia-smi --query-gpu=name`), never the date; commit them. No network: the backbone has random weights
# (scripts/gpu_check/tasks/gpu_check/_base.yaml says why that is enough).
#
#   scripts/gpu_check.sh                        # on the GPU machine (GPU_CHECK_OUT=... to write elsewhere)
#   GPU_CHECK_SIZE=tiny scripts/gpu_check.sh    # the same steps on a tiny ViT at 32x32, batch 8, on the CPU (~30 s;
#                                               # tests/test_gpu_check.py), written to results/perf/gpu-check-tiny/
#
# Other knobs: GPU_CHECK_METHODS (default all; tiny: linear,deep_share), GPU_CHECK_STEPS (timed steps per method),
# GPU_CHECK_MACHINE (the file name), GPU_CHECK_BUDGET_S (450: each step's timeout is cut to what is left of it; a
# timed-out step gets 10 s more to die, so the check ends within 8 minutes).
# Any failing step stops the check with one line `gpu-check: FAILED at ...` and a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."

START_NS=$(date +%s%N)
SIZE=${GPU_CHECK_SIZE:-full}
BUDGET_S=${GPU_CHECK_BUDGET_S:-450}
TASKS_DIR=scripts/gpu_check/tasks

fail() {
  echo "gpu-check: FAILED $*${LOG:+; log: $LOG}" >&2
  exit 1
}

case "$SIZE" in
  full)
    TASK=gpu_check/vit_b16 BACKBONE="ViT-B/16 (vit_base_patch16_224.orig_in21k)" SIDE=224 BATCH=128
    DEVICE=${GPU_CHECK_DEVICE:-cuda} STEPS=${GPU_CHECK_STEPS:-10} METHODS=${GPU_CHECK_METHODS:-all}
    DATA_IMAGES=256 SMOKE_LIMIT=500 OUT=${GPU_CHECK_OUT:-results/measurements/gpu-check} ;;
  tiny)
    TASK=gpu_check/vit_tiny BACKBONE="tiny ViT (patch 8, width 64, depth 4)" SIDE=32 BATCH=8
    DEVICE=${GPU_CHECK_DEVICE:-cpu} STEPS=${GPU_CHECK_STEPS:-2} METHODS=${GPU_CHECK_METHODS:-linear,deep_share}
    DATA_IMAGES=16 SMOKE_LIMIT=32 OUT=${GPU_CHECK_OUT:-results/perf/gpu-check-tiny}
    # one thread: a tiny model gains nothing from more, and on a busy machine two threads wait on each other
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} ;;
  *) fail "before starting: GPU_CHECK_SIZE must be full or tiny, not '$SIZE'" ;;
esac
SMOKE_METHOD=${GPU_CHECK_SMOKE_METHOD:-deep_share}

if [ -x .venv/bin/bench ]; then BENCH=.venv/bin/bench PYTHON=.venv/bin/python
else BENCH=$(command -v bench) || fail "before starting: no .venv/bin/bench and no bench on PATH (make install)"
  PYTHON=$(command -v python3)
fi
FIGURES="$PYTHON scripts/gpu_check/figures.py"

# No network here: nothing may wait on the hub.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

# ---------------------------------------------------------------- the machine
if [ "$SIZE" = full ]; then
  command -v nvidia-smi >/dev/null \
    || fail "before starting: nvidia-smi not found: no GPU here (GPU_CHECK_SIZE=tiny runs the check on the CPU)"
  GPU=${CUDA_VISIBLE_DEVICES:-0}   # the first visible GPU is the one measured (cuda:0)
  DEVICE_NAME=$(timeout 30 nvidia-smi --query-gpu=name --format=csv,noheader -i "${GPU%%,*}" 2>/dev/null | head -n 1) \
    || DEVICE_NAME=$(timeout 30 nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1) \
    || fail "before starting: nvidia-smi could not name the GPU"
  [ -n "$DEVICE_NAME" ] || fail "before starting: nvidia-smi named no GPU"
else
  DEVICE_NAME="CPU ($(getconf _NPROCESSORS_ONLN) cores)"
fi
# The file name: the GPU's name as a slug ("NVIDIA H200" -> nvidia-h200), tiny-cpu for the tiny size.
SLUG=$(echo "$DEVICE_NAME" | tr '[:upper:]' '[:lower:]' | sed -E 's/[^a-z0-9]+/-/g; s/^-+//; s/-+$//')
[ "$SIZE" = tiny ] && SLUG=tiny-cpu
MACHINE=${GPU_CHECK_MACHINE:-$SLUG}
[[ "$MACHINE" =~ ^[A-Za-z0-9._-]+$ ]] || fail "before starting: GPU_CHECK_MACHINE '$MACHINE' is not a plain file name"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
LOG=$WORK/log
SUMMARY=$WORK/summary.json
trap '[ $? = 0 ] && rm -rf "$WORK"' EXIT   # kept after a failure, for its log

say() { echo "$*" | tee -a "$LOG"; }
elapsed_ms() { echo $(( ($(date +%s%N) - START_NS) / 1000000 )); }
as_seconds() { printf '%d.%03d' $(( $1 / 1000 )) $(( $1 % 1000 )); }

# step NAME TIMEOUT_S COMMAND...: run it under `timeout` (cut to what is left of the budget), its output printed and
# logged; stop the whole check on failure. The step's seconds are in $STEP_MS afterwards.
step() {
  local name=$1 limit=$2
  shift 2
  local left=$(( BUDGET_S - $(elapsed_ms) / 1000 - 5 ))
  (( left < limit )) && limit=$left
  (( limit >= 5 )) || fail "at '$name': the ${BUDGET_S} s budget is spent"
  say ""
  say "== $name (timeout ${limit} s): $*"
  local begin rc
  begin=$(elapsed_ms)
  set +e
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  set -e
  STEP_MS=$(( $(elapsed_ms) - begin ))
  if (( rc == 124 || rc == 137 )); then fail "at '$name': timed out after ${limit} s"
  elif (( rc != 0 )); then fail "at '$name': exit $rc, see its output above"
  fi
  $FIGURES step "$SUMMARY" "$name" "$(as_seconds "$STEP_MS")" "$limit" || fail "at '$name': could not record its time"
}

# figures KIND ARGS...: fold a step's JSON into the summary and print its figures.
figures() {
  local rc
  set +e
  $FIGURES "$1" "$SUMMARY" "${@:2}" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  set -e
  (( rc == 0 )) || fail "reading the figures of '$1' (${*:2})"
}

say "gpu-check: $SIZE size on $DEVICE_NAME -> $OUT/$MACHINE.json"
figures start --machine "$MACHINE" --device-name "$DEVICE_NAME" --device "$DEVICE" --size "$SIZE" --task "$TASK" \
  --backbone "$BACKBONE" --methods "$METHODS" --image-size "$SIDE" --batch "$BATCH" --steps "$STEPS"

COMMON=(--task "$TASK" --tasks-dir "$TASKS_DIR" --batch "$BATCH" --device "$DEVICE")

# ---------------------------------------------------------------- step cost of every method, bf16 then fp32
for precision in bf16 fp32; do
  limit=100; [ "$precision" = fp32 ] && limit=140
  step "perf methods $precision" "$limit" "$BENCH" perf methods "${COMMON[@]}" --method "$METHODS" --steps "$STEPS" \
    --precision "$precision" --project vtab --perf-dir "$WORK/perf-$precision"
  figures methods "$precision" "$WORK/perf-$precision/methods.json"
done

# ---------------------------------------------------------------- the data path at the same batch
for precision in bf16 fp32; do
  step "perf data $precision" 50 "$BENCH" perf data "${COMMON[@]}" --method "$SMOKE_METHOD" --images "$DATA_IMAGES" \
    --precision "$precision" --perf-dir "$WORK/perf-$precision"
  figures data "$precision" "$WORK/perf-$precision/data.json"
done

# ---------------------------------------------------------------- a short real-size run (into a throw-away store)
step "smoke run $SMOKE_METHOD" 100 "$BENCH" run --task "$TASK" --tasks-dir "$TASKS_DIR" --method "$SMOKE_METHOD" \
  --stage final --seeds 42 --limit "$SMOKE_LIMIT" --epochs 1 --set base_lr=0.1 --set weight_decay=0.0 \
  --device "$DEVICE" --results "$WORK/runs"
figures smoke "$WORK/runs" "$(as_seconds "$STEP_MS")"

# ---------------------------------------------------------------- the committed files
figures finish "$(as_seconds "$(elapsed_ms)")"
mkdir -p "$OUT"
cp "$SUMMARY" "$OUT/$MACHINE.json.tmp" && mv "$OUT/$MACHINE.json.tmp" "$OUT/$MACHINE.json"
say ""
say "gpu-check: done in $(as_seconds "$(elapsed_ms)") s; wrote $OUT/$MACHINE.json and $OUT/$MACHINE.log"
cp "$LOG" "$OUT/$MACHINE.log"
