#!/bin/bash
# One device session, prepared (docs/gpu.md): the CUDA checks nothing else can run, then the
# training runs of issues 26 and 27 side by side on the one GPU, each given the same wall clock
# (time_limit_min: the LR decays to 0 by the deadline), then every result scored there.
#
#   teacher_dev   the ResNet-18 teacher at the deployment crop (360x480, scale 0.5-1.5, batch 16),
#                 without drive 0006R0: does a GPU budget make it stronger on an unseen drive?
#   teacher_all   the same on every frame: the candidate to ship (comes back in 15 MB parts)
#   student_dev   config/train_camvid_distill.yaml from scratch at a GPU budget, without 0006R0:
#                 is the narrow widths' gap on unseen drives the budget or the recipe?
#   student_all   the same on every frame: the candidate to ship (comes back whole)
#   quarter_sN    labelled-only on a quarter of the labels (MGD's protocol), seeds 0 and 1
#   quarter_mgd_sN  + the other frames unlabelled, MGD with class-balanced pseudo labels (0.8)
#                   and weights rebalanced (pixel 0.5, region 5: docs/log/mgd_diagnosis.md 5-6)
#
# Here, before the call:  echo /.gpu/ >> .git/info/exclude
#                          python tools/dev/pack_camvid.py --out .gpu/camvid
# The call (device tool):  run(command="bash tools/dev/gpu_session.sh", carry=[".gpu"], timeout_s=590)
#
# Knobs (environment): PY (python3), BUDGET seconds for the whole script (default 560), DEVICE (cuda),
# DATA (.gpu/camvid), ARMS (default: all of the above), SKIP_CHECKS=1 (training only), EXTRA (more
# key=value overrides for every run), WORK (where runs and checkpoints stay, not $OUT),
# SCORE_RESERVE seconds kept for scoring and packing (default 90), SETUP seconds a run may take
# before its first step (default 60: data, the KA autoencoder), SETS the scoring sets
# (default val,heldout,shift_a,shift_b), TRAIN=0 (only score what WORK holds, e.g. after a call that
# timed out; TRAIN=1 again resumes runs that were stopped).
# Comes back (the tool returns at most 8 files): $OUT/session.log (written as it goes, so a
# timeout still says how far it got), $OUT/report.tgz (checks, train logs, scores_NAME.json/.txt),
# $OUT/runs.tgz (configs and histories), $OUT/student_all.safetensors, $OUT/teacher_all.part-0*
# (cat them into one file).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:?set OUT to the folder that comes back}
PY=${PY:-python3} BUDGET=${BUDGET:-560} DEVICE=${DEVICE:-cuda} DATA=${DATA:-.gpu/camvid}
ARMS=${ARMS:-teacher_dev teacher_all student_dev student_all quarter_s0 quarter_mgd_s0 quarter_s1 quarter_mgd_s1}
W=${WORK:-/tmp/slimseg_gpu}  # run folders with checkpoints: only what is listed above comes back
R=$W/report  # small text outputs, packed into $OUT/report.tgz at the end
SCORE_RESERVE=${SCORE_RESERVE:-90} SETUP=${SETUP:-60}
mkdir -p "$R" "$W"
START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
say() { echo "[$(( $(date +%s) - START )) s] $*" | tee -a "$OUT/session.log"; }

if [ "${SKIP_CHECKS:-0}" != 1 ]; then
  say "environment"
  { nvidia-smi; $PY -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"; } \
    > "$R/env.txt" 2>&1
  say "gpu-marked tests"
  timeout 120 $PY -m pytest -q -m gpu test/test_cli_bench.py test/test_runtime_backends_tensorrt.py \
    > "$R/pytest_gpu.txt" 2>&1
  say "pytest exit $?"
  for size in 360x480 1024x2048; do
    for precision in fp32 fp16; do
      say "bench $size $precision"
      timeout 60 $PY -m slimseg_ros.cli.main bench --device "$DEVICE" --precision $precision \
        --input-size $size --json "$R/bench_${DEVICE}_${precision}_${size}.json" \
        > "$R/bench_${precision}_${size}.txt" 2>&1
      say "bench exit $?"
    done
  done
fi

HELD="data.options={exclude_sequences: [0006R0]}"  # the drive the dev check scores on
EVERY="data.options={exclude_sequences: []}"
TEACHER=(--config config/train_camvid_teacher.yaml "data.crop_size=[360,480]"
         "data.scale_range=[0.5,1.5]" data.batch_size=16)
STUDENT=(--config config/train_camvid_distill.yaml "data.crop_size=[288,384]")
QUARTER=(--config config/train_camvid.yaml "$HELD" "data.crop_size=[288,384]"
         "data.scale_range=[0.4,1.2]" data.labeled_fraction=0.25
         "data.partition=$W/partition_quarter.json")
arm_args() {  # the slimseg train arguments of arm $1 (NAME, NAME_dev/_all, NAME_sSEED), in A
  local seed=${1##*_s} split
  [ "$seed" = "$1" ] && seed=0
  case ${1##*_} in dev) split=$HELD ;; all) split=$EVERY ;; esac
  case ${1%_s[0-9]} in
    teacher_dev|teacher_all) A=("${TEACHER[@]}" "$split") ;;
    student_dev|student_all) A=("${STUDENT[@]}" "$split"
                                "loss.ka_autoencoder=$W/ka_${1#student_}.safetensors") ;;
    quarter) A=("${QUARTER[@]}") ;;
    quarter_mgd) A=("${QUARTER[@]}" data.unlabeled=partition mgd.external_teacher=false
                    mgd.confidence=0.7 mgd.class_fraction=0.8
                    mgd.pixel_weight=0.5 mgd.region_weight=5) ;;
    *) echo "unknown arm $1" >&2; return 1 ;;
  esac
  A+=(seed="$seed")
}

if [ "${TRAIN:-1}" = 1 ]; then
  # every arm at once, one data worker and one CPU thread each (16 cores); the same deadline
  MINUTES=$($PY -c "print(round(max(60, $(left) - $SCORE_RESERVE - $SETUP) / 60, 2))")
  say "training: $ARMS, $MINUTES min each"
  pids=()
  for arm in $ARMS; do
    arm_args "$arm" || continue
    $PY -m slimseg_ros.cli.main train --data-root "$DATA" "${A[@]}" out="$W/$arm" \
      device="$DEVICE" amp=true steps=1000000 time_limit_min="$MINUTES" val_every=0 \
      checkpoint_every=500 threads=1 data.workers=1 ${EXTRA:-} > "$R/train_$arm.log" 2>&1 &
    pids+=($!)
  done
  # a run still going past the deadline and its setup's grace is stopped: its state is saved,
  # but not its weights (TRAIN=1 again resumes it), so SETUP must cover the slowest start
  ( sleep $(( $(left) - SCORE_RESERVE )); kill -INT "${pids[@]}" 2>/dev/null ) &
  watchdog=$!
  for pid in "${pids[@]}"; do wait "$pid"; done
  kill "$watchdog" 2>/dev/null
  say "training done: $(for a in $ARMS; do printf '%s=%s ' "$a" \
    "$(tr '\r' '\n' < "$R/train_$a.log" | grep -ao 'step [0-9]*' | tail -1)"; done)"
fi

# scores on the studies' sets (val, the held-out drive, two simulated cameras): one process per
# checkpoint, since the metrics (boundary F1 above all) run on the CPU
named=("shipped=models/slimseg_camvid.safetensors" "shipped_teacher=models/teacher_camvid.safetensors")
for arm in $ARMS; do
  [ -f "$W/$arm/last.safetensors" ] && named+=("$arm=$W/$arm/last.safetensors")
done
spids=()
for item in "${named[@]}"; do
  OMP_NUM_THREADS=2 timeout $(( $(left) - 15 )) $PY experiments/score_checkpoints.py "$item" \
    --data-root "$DATA" --sets "${SETS:-val,heldout,shift_a,shift_b}" --device "$DEVICE" \
    --json "$R/scores_${item%%=*}.json" > "$R/scores_${item%%=*}.txt" 2>&1 &
  spids+=($!)
done
fails=0
for pid in "${spids[@]}"; do wait "$pid" || fails=$(( fails + 1 )); done
say "scored ${#named[@]} checkpoints, $fails failed"

[ -f "$W/student_all/last.safetensors" ] && cp "$W/student_all/last.safetensors" "$OUT/student_all.safetensors"
[ -f "$W/teacher_all/last.safetensors" ] && split -b 15M -d "$W/teacher_all/last.safetensors" "$OUT/teacher_all.part-"
tar czf "$OUT/runs.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude='tensorboard' \
  --exclude=report -C "$W" .
tar czf "$OUT/report.tgz" -C "$W" report
say "done"
