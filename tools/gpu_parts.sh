#!/usr/bin/env bash
# Cut the offline bundle (.gpu-bundle/p*/part) and the wheels it lacks (.gpu-wheels/w*)
# into chunks that fit one device call beside the working tree: a call carries the tree
# and its chunk, 64 MiB together, counted on disk. The tree grows with the committed
# references (36.7 MiB on 2026-12-05, when 31 MiB bundle parts were refused), so the
# chunk size follows it. Output: .gpu-parts/p00, p01, ... and w00, w01, ... (git-ignored);
# copy each in its own call (docs/gpu-host.md); `tools/h100.sh setup` joins them in order.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=$((64 << 20))
margin=$((2 << 20))
# the files the call will carry: tracked ones that exist (a sitting whose notebooks read no
# reference may leave outputs/reference out of its checkout: docs/gpu-host.md)
tree=$(git ls-files -z | { xargs -0 du -k -- 2>/dev/null || true; } | awk '{s += $1} END {print s * 1024}')
chunk=$((limit - tree - margin))
if [ "$chunk" -lt $((4 << 20)) ]; then
  echo "the tracked tree takes $((tree >> 20)) MiB of the 64: too little room for bundle chunks" >&2
  exit 1
fi
rm -rf .gpu-parts && mkdir -p .gpu-parts
cat $(ls .gpu-bundle/p*/part | sort -V) | split -b "$chunk" -d -a 2 - .gpu-parts/p
if ls .gpu-wheels/w[0-9]* >/dev/null 2>&1; then
  cat $(ls .gpu-wheels/w[0-9]* | sort -V) | split -b "$chunk" -d -a 2 - .gpu-parts/w
fi
echo "tree $((tree >> 20)) MiB on disk; chunks of at most $((chunk >> 20)) MiB:"
ls -l .gpu-parts
