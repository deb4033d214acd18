#!/usr/bin/env bash
# Steps run on the lent GPU host (no network, torch 2.11 preinstalled), one per
# device call. The offline vLLM bundle's parts must already sit in /root/stage
# (docs/gpu-host.md).
#
#   tools/h100.sh setup              unpack the bundle (once per machine), compile its bytecode, time imports
#   tools/h100.sh study [ARGS...]    `python -m slmstudy run --profile gpu ARGS` (what `make study` runs after
#                                    its install step); stops inside the call's limit, resumes on the next call
#   tools/h100.sh detach [ARGS...]   the same study as one process that outlives the call (setsid): the
#                                    study's wall time is one run's, whatever the calls' 10-minute limit
#   tools/h100.sh wait [SECONDS]     follow a detached study for up to SECONDS (540); once it has ended,
#                                    pack its folders and exit with its code (75: still running)
#   tools/h100.sh test [PYTEST...]   the gpu-marked tests (pytest arguments after it, e.g. -k gguf), log in
#                                    $OUT/gpu_tests.log
#   tools/h100.sh pack NAME          pack every run folder and study timing into $OUT/NAME.tar.xz.N, and the
#                                    measurement pool into $OUT/pool.tar.xz.N (15 MiB parts; a lost machine loses nothing)
#   tools/h100.sh restore            unpack a pool carried back in .gpu-pool/pool.tar.xz.N (resume on a new machine)
#
# Everything it prints comes back in the call's output; files through $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PYTHONPATH=/root/site:$PWD/lib VLLM_USE_FLASHINFER_SAMPLER=0 HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1
export PYTHONUNBUFFERED=1 SLMSTUDY_CACHE_DIR=/root/slmstudy-cache
STATE=${SLMSTUDY_DETACHED:-/root/study}  # a detached study's log, pid and exit code

# the copy has no .git: every row must name the commit that was sent (40 hex digits)
need_commit() {
  : "${SLMSTUDY_GIT_COMMIT:?set SLMSTUDY_GIT_COMMIT to the commit of this tree: git rev-parse HEAD where it was sent from}"
}

step=${1:?step}; shift
case "$step" in
  setup)
    if [ ! -d /root/site/vllm ]; then
      # parts p1, p2, ... in order (however many the bundle was split into)
      cat $(ls /root/stage/p* | sort -V) | xz -d -T0 | tar -x -C /root || exit 1
    fi
    # wheels the bundle lacks (tools/gpu_wheels.sh: xllamacpp, vllm-gguf-plugin), staged as
    # /root/stage/w00, w01, ...: one tar; a wheel is a zip, unpacked into the site folder
    if ls /root/stage/w[0-9]* >/dev/null 2>&1; then
      mkdir -p /root/stage/wheels
      cat $(ls /root/stage/w[0-9]* | sort -V) | tar -x -C /root/stage/wheels || exit 1
      for w in /root/stage/wheels/*.whl; do
        python3 -m zipfile -e "$w" /root/site && echo "unpacked $(basename "$w")"
      done
    fi
    echo "PYTHONDONTWRITEBYTECODE=${PYTHONDONTWRITEBYTECODE:-unset}"
    t0=$(date +%s.%N); python3 -c 'import vllm' 2>/dev/null; t1=$(date +%s.%N)
    # The bundle is unpacked without bytecode; compile it once so that no engine
    # process pays for it (each would otherwise compile vLLM's modules again).
    python3 -m compileall -q -j 16 /root/site >/dev/null 2>&1
    t2=$(date +%s.%N); python3 -c 'import vllm' 2>/dev/null; t3=$(date +%s.%N)
    t4=$(date +%s.%N); python3 -c 'import vllm; from vllm.v1.engine.async_llm import AsyncLLM' 2>/dev/null; t5=$(date +%s.%N)
    python3 - "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" <<'PY'
import sys
t = [float(x) for x in sys.argv[1:]]
print(f"import vllm: {t[1]-t[0]:.1f} s before compileall ({t[2]-t[1]:.1f} s to compile), {t[3]-t[2]:.1f} s after; "
      f"with AsyncLLM {t[5]-t[4]:.1f} s")
PY
    python3 -c 'import vllm, papermill, pydantic, torch; print("vllm", vllm.__version__, "torch", torch.__version__, "papermill", papermill.__version__)'
    nvidia-smi --query-gpu=name,driver_version,memory.used,memory.total,clocks.sm,power.draw --format=csv
    # the carried tools as the study uses them: GuideLLM's client asks httpx for HTTP/2
    # (h2 missing made every GuideLLM level fail on 2026-12-07, found only after the sitting)
    python3 - <<'PY'
checks = {"guidellm": "import guidellm", "httpx http2 (GuideLLM's client)": "import httpx; httpx.AsyncClient(http2=True)",
          "xllamacpp": "import xllamacpp", "vllm-gguf-plugin": "import vllm_gguf_plugin"}
for name, code in checks.items():
    try:
        exec(code)
        print(f"carried tool {name}: ok")
    except Exception as e:
        print(f"carried tool {name}: FAILED {type(e).__name__}: {e}")
PY
    python3 -m slmstudy list
    ;;
  study)
    rc=0
    need_commit
    # No new measurement after START_BUDGET s, so none is cut off by the call's limit;
    # the next call resumes the plan, and the notebooks run once it is complete.
    timeout -s TERM "${RUN_TIMEOUT:-570}" python3 -m slmstudy run --profile gpu --start-budget "${START_BUDGET:-340}" "$@" 2>&1 \
      | grep -v "Kernel is running over TCP" | tee -a "$OUT/study.log"
    rc=${PIPESTATUS[0]}
    "$0" pack "${PACK:-study}"
    exit $rc
    ;;
  detach)
    need_commit
    # A call's processes end with it unless they start a session of their own: the
    # study then runs on between calls (the machine stays while calls follow within
    # its idle limit), and no job or notebook waits for a call boundary: no import
    # standby is lost, no budget stops a plan half-way.
    if [ -f "$STATE/pid" ] && [ ! -f "$STATE/rc" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
      echo "a detached study is running already (pid $(cat "$STATE/pid")): tools/h100.sh wait"; exit 2
    fi
    rm -rf "$STATE" && mkdir -p "$STATE"
    budget=()
    [ -n "${START_BUDGET:-}" ] && budget=(--start-budget "$START_BUDGET")
    setsid bash -c 'python3 -m slmstudy run --profile gpu "$@" > "$0/study.log" 2>&1; echo $? > "$0/rc"' \
      "$STATE" "${budget[@]}" "$@" < /dev/null > /dev/null 2>&1 &
    echo $! > "$STATE/pid"
    date +%s > "$STATE/started"
    sleep 2 && echo "detached study started (pid $(cat "$STATE/pid")): $*"
    cat "$STATE/study.log" 2>/dev/null && wc -c < "$STATE/study.log" > "$STATE/seen"
    ;;
  wait)
    [ -d "$STATE" ] || { echo "no detached study on this machine (tools/h100.sh detach)"; exit 2; }
    deadline=$((SECONDS + ${1:-540}))
    while [ ! -f "$STATE/rc" ] && [ $SECONDS -lt $deadline ]; do sleep 5; done
    # only what was written since the last wait (the whole log stays in $STATE)
    seen=$(cat "$STATE/seen" 2>/dev/null || echo 0)
    tail -c +"$((seen + 1))" "$STATE/study.log" | grep -v "Kernel is running over TCP"
    wc -c < "$STATE/study.log" > "$STATE/seen"
    echo "--- $(( $(date +%s) - $(cat "$STATE/started") )) s since the study started"
    if [ ! -f "$STATE/rc" ]; then
      echo "still running: call tools/h100.sh wait again within the machine's idle limit"; exit 75
    fi
    cp "$STATE/study.log" "$OUT/study.log"
    "$0" pack "${PACK:-study}"
    exit "$(cat "$STATE/rc")"
    ;;
  test)
    # the study's compile caches: the tests' engines (same arguments) start warm
    SLMSTUDY_COMPILE_CACHE=$PWD/outputs/runs/pool/compile-cache \
      python3 -m pytest -m gpu -v -p no:cacheprovider tests "$@" 2>&1 | tee "$OUT/gpu_tests.log"
    exit "${PIPESTATUS[0]}"
    ;;
  pack)
    # Files come back from $OUT at 16 MiB each (8 at most): every archive is split
    # into 15 MiB parts NAME.tar.xz.0, .1, ... (join with cat).
    mkdir -p outputs/runs
    # Run folders are complete on their own (the pool stays behind: its rows are in them);
    # raw journals and traces stay behind too: their content is in tables/*.parquet.
    tar -C outputs/runs --exclude='pool' --exclude='*.jsonl' --exclude='./.*' --exclude='*/.*' -cf - . \
      | xz -T0 -6 | split -b 15M -d -a 1 - "$OUT/${1:-study}.tar.xz."
    # The pool whole (journals included: its manifests cover them), compile caches left out:
    # carried back to a new machine (`restore`), every finished job is reused there.
    [ -d outputs/runs/pool ] && tar -C outputs/runs --exclude='compile-cache' --exclude='.lock' -cf - pool \
      | xz -T0 -6 | split -b 15M -d -a 1 - "$OUT/pool.tar.xz."
    ls -la "$OUT"
    ;;
  restore)
    mkdir -p outputs/runs && cat $(ls .gpu-pool/pool.tar.xz.* | sort -V) | xz -d | tar -C outputs/runs -x \
      && ls outputs/runs/pool
    ;;
  *) echo "unknown step $step"; exit 2 ;;
esac
