#!/usr/bin/env bash
# Steps run on the lent GPU host (no network, torch 2.11 preinstalled), one per
# device call. The offline vLLM bundle's parts must already sit in /root/stage
# (see README, "Running on a GPU without network").
#
#   tools/h100.sh setup                 unpack the bundle (once per machine)
#   tools/h100.sh test                  the gpu-marked tests
#   tools/h100.sh run NOTEBOOK...       run notebooks (profile gpu), pack their run folders into $OUT
#   tools/h100.sh report                00_report over the committed references and this machine's runs
#
# Everything it prints and every run folder comes back through $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONPATH=/root/site:$PWD/lib VLLM_USE_FLASHINFER_SAMPLER=0 HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1
export PYTHONUNBUFFERED=1 SLMSTUDY_CACHE_DIR=/root/slmstudy-cache

step=${1:?step}; shift
case "$step" in
  setup)
    if [ ! -d /root/site/vllm ]; then
      cat /root/stage/p1 /root/stage/p2 /root/stage/p3 /root/stage/p4 | xz -d -T0 | tar -x -C /root || exit 1
    fi
    python3 -c 'import vllm, papermill, nbval, pydantic, torch; print("vllm", vllm.__version__, "torch", torch.__version__, "papermill", papermill.__version__)'
    nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,clocks.sm,power.draw --format=csv
    python3 -m slmstudy list
    ;;
  test)
    python3 -m pytest -m gpu -v -p no:cacheprovider tests 2>&1 | tee "$OUT/gpu_tests.log"
    exit "${PIPESTATUS[0]}"
    ;;
  run)
    # Stop inside the call's 10 minutes so the results still get packed; a
    # second call re-runs the notebook and skips the configurations already done.
    rc=0
    timeout "${RUN_TIMEOUT:-540}" python3 -m slmstudy run --profile gpu "$@" 2>&1 | grep -v "Kernel is running over TCP" | tee -a "$OUT/run.log"
    rc=${PIPESTATUS[0]}
    for nb in "$@"; do
      d=$(ls -td outputs/runs/"$nb"/gpu-* 2>/dev/null | head -1)
      # raw journals and traces stay behind: their content is in tables/*.parquet
      [ -n "$d" ] && tar -C "$(dirname "$d")" --exclude=compile-cache --exclude='*.jsonl' \
        -cJf "$OUT/$nb.tar.xz" "$(basename "$d")"
    done
    ls -la "$OUT"
    exit $rc
    ;;
  report)
    # The report judges the committed reference runs (01-03) and the 04 run of
    # this machine: copy the references where the report looks for runs.
    for nb in 01_model_vs_model 02_precision 03_batch_scaling; do
      mkdir -p outputs/runs/$nb && rm -rf outputs/runs/$nb/gpu-reference && cp -r outputs/reference/h100/$nb outputs/runs/$nb/gpu-reference
      touch outputs/runs/$nb/gpu-reference
    done
    "$0" run 00_report
    ;;
  *) echo "unknown step $step"; exit 2 ;;
esac
