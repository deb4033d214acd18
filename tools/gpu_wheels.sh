#!/usr/bin/env bash
# Wheels the GPU bundle lacks, packed for the lent GPU host (docs/gpu-host.md):
# xllamacpp (06_edge's engine) and vllm-gguf-plugin (GGUF in vLLM), both abi3 wheels
# that install on the host's Python 3.12. Split into 24 MiB parts .gpu-wheels/w00,
# w01, ...: each part rides with the working tree in one `run` call (64 MiB in all).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu-wheels && mkdir -p .gpu-wheels/dl
.venv/bin/pip download --quiet --no-deps -d .gpu-wheels/dl \
  "xllamacpp==2026.10.11549" "vllm-gguf-plugin==0.0.5"
tar -C .gpu-wheels/dl -cf - . | split -b 24M -d - .gpu-wheels/w
rm -rf .gpu-wheels/dl
ls -l .gpu-wheels
