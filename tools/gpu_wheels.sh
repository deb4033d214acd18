#!/usr/bin/env bash
# Wheels the GPU bundle lacks, packed for the lent GPU host (docs/gpu-host.md):
# xllamacpp (06_edge's engine) and vllm-gguf-plugin (GGUF in vLLM), both abi3 wheels
# that install on the host's Python 3.12; and GuideLLM (04's third serving tool) with
# the dependencies neither the host's image (device KINDS.md, 2026-11-17) nor the
# bundle has, as CPython 3.12 manylinux wheels. h2 (with hpack and hyperframe): GuideLLM's
# client asks httpx for HTTP/2, and without it every GuideLLM level failed on the lent H100
# (2026-12-07, ImportError; `tools/h100.sh setup` now tries that client before any study). Split into 24 MiB parts .gpu-wheels/w00,
# w01, ...: each part rides with the working tree in one `run` call (64 MiB in all).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu-wheels && mkdir -p .gpu-wheels/dl
.venv/bin/pip download --quiet --no-deps -d .gpu-wheels/dl \
  "xllamacpp==2026.10.11549" "vllm-gguf-plugin==0.0.5"
.venv/bin/pip download --quiet --no-deps -d .gpu-wheels/dl --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform linux_x86_64 \
  "guidellm==0.8.1" "aiologic==0.17.1" "culsans==0.10.0" "datasets==5.2.0" "eval-type-backport==0.4.0" \
  "faker==40.63.0" "ftfy==6.3.1" "html5tagger==2.0.0" "more-itertools==11.2.1" "multiprocess==0.70.19" \
  "sanic==25.12.1" "sanic-routing==23.12.0" "tracerite==2.6.5" "ujson==6.1.0" \
  "h2==4.4.1" "hpack==4.2.0" "hyperframe==6.1.0"
tar -C .gpu-wheels/dl -cf - . | split -b 24M -d - .gpu-wheels/w
rm -rf .gpu-wheels/dl
ls -l .gpu-wheels
