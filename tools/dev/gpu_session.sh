#!/bin/bash
# One device session, prepared (docs/gpu.md): the CUDA checks nothing else can run, then issue
# 14's ablation at 360x480 with what time is left. Checks' outputs land in $OUT/gpu, the
# ablation's aggregate in $OUT/ablation_results_gpu.json, its logs and histories in $OUT/runs.tgz.
#
# Here, before the call:  echo /.gpu/ >> .git/info/exclude
#                          python tools/dev/pack_camvid.py --out .gpu/camvid
# The call (device tool):  run(command="bash tools/dev/gpu_session.sh", carry=[".gpu"], timeout_s=590)
#
# Knobs (environment): BUDGET seconds for the whole script (default 560), DEVICE (cuda),
# DATA (.gpu/camvid), SEEDS (0,1,2), JOBS (runs at once, default 6), STEPS (default: sized from a
# 30-step calibration run so every arm and seed fits), SKIP_CHECKS=1 (ablation only), EXTRA
# (more key=value overrides for every run), WORK (where runs and checkpoints stay, not $OUT).
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:?set OUT to the folder that comes back}
BUDGET=${BUDGET:-560} DEVICE=${DEVICE:-cuda} DATA=${DATA:-.gpu/camvid}
SEEDS=${SEEDS:-0,1,2} JOBS=${JOBS:-6}
R=$OUT/gpu  # small text outputs, straight into what comes back even if time runs out
W=${WORK:-/tmp/slimseg_gpu}  # run folders with checkpoints: only their logs and JSON come back
mkdir -p "$R" "$W"
START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
say() { echo "[$(( $(date +%s) - START )) s] $*" | tee -a "$R/session.log"; }
# the ablation at the deployment crop and the evaluation size of the CPU table's big brother
ABLATION_SIZE=(device="$DEVICE" amp=true "data.crop_size=[360,480]" "data.val_size=[360,480]"
               "data.scale_range=[0.5,1.5]" ${EXTRA:-})

if [ "${SKIP_CHECKS:-0}" != 1 ]; then
  say "environment"
  { nvidia-smi; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())"; } \
    > "$R/env.txt" 2>&1
  say "gpu-marked tests"
  timeout 120 python3 -m pytest -q -m gpu test/test_cli_bench.py test/test_runtime_backends_tensorrt.py \
    > "$R/pytest_gpu.txt" 2>&1
  say "pytest exit $?"
  for size in 360x480 1024x2048; do
    for precision in fp32 fp16; do
      say "bench $size $precision"
      timeout 60 python3 -m slimseg_ros.cli.main bench --device "$DEVICE" --precision $precision \
        --input-size $size --json "$R/bench_${DEVICE}_${precision}_${size}.json" \
        > "$R/bench_${precision}_${size}.txt" 2>&1
      say "bench exit $?"
    done
  done
fi

ablate() {  # ablate STEPS ARMS SEEDS OUTDIR SECONDS
  timeout "$5" python3 experiments/ablation.py --data-root "$DATA" --out "$4" --arms "$2" \
    --seeds "$3" --steps "$1" --jobs "$JOBS" --threads 1 val_every=0 "${ABLATION_SIZE[@]}" \
    >> "$R/ablation_driver.log" 2>&1
}

if [ -z "${STEPS:-}" ]; then
  # calibration (also the AMP training step): one slimmable run of 30 steps alone
  say "calibration: 30 steps of slimseg"
  t0=$(date +%s)
  ablate 30 slimseg 0 "$W/calibration" 150
  took=$(( $(date +%s) - t0 ))
  # 8 runs per seed (4 slimmable arms + 4 independent widths), JOBS at once; startup and
  # validation count in the calibration, so this errs short
  runs=$(( 8 * $(echo "$SEEDS" | tr ',' '\n' | wc -l) ))
  STEPS=$(( ( $(left) - 40 ) * JOBS * 30 / (runs * took + 1) / 2 ))
  [ "$STEPS" -lt 50 ] && STEPS=50
  say "calibration took $took s; $runs runs at $JOBS at once -> STEPS=$STEPS"
fi

say "ablation: $STEPS steps, seeds $SEEDS"
ablate "$STEPS" ce_only,inplace_kd,independent,slimseg,stepwise_kd "$SEEDS" "$W/ablation" \
  $(( $(left) - 25 ))
say "ablation exit $?"
python3 experiments/ablation.py --out "$W/ablation" --seeds "$SEEDS" --steps "$STEPS" --report-only \
  --json "$OUT/ablation_results_gpu.json" > "$R/ablation_report.txt" 2>&1
say "report exit $?"
# checkpoints stay there: logs, histories and JSON come back
tar czf "$OUT/runs.tgz" --exclude='*.safetensors' --exclude='*.pt' --exclude='tensorboard' \
  -C "$W" .
say "done"
