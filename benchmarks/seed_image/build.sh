#!/usr/bin/env bash
# Build the reference pipeline's image on the same base as ours and print both sizes.
# Usage: benchmarks/seed_image/build.sh [our-image-tag]   (run from the repository root,
# after `make run`; needs a Docker engine: ../shared/tools/container-engine up)
set -euo pipefail
ours=${1:-linreg-ops:local}
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp -r src models "$context/"
cp benchmarks/seed_image/requirements.txt "$context/"
sed 's#COPY benchmarks/seed_image/requirements.txt .#COPY requirements.txt .#' \
  benchmarks/seed_image/Dockerfile > "$context/Dockerfile"
docker build --network host -q -t linreg-ops-seed:local "$context" >/dev/null
seed=$(docker image inspect -f '{{.Size}}' linreg-ops-seed:local)
base=$(docker image inspect -f '{{.Size}}' python:3.11-slim)
mine=$(docker image inspect -f '{{.Size}}' "$ours")
awk -v b="$base" -v s="$seed" -v m="$mine" 'BEGIN {
  printf "| image | MB | vs seed |\n|---|---:|---:|\n"
  printf "| python:3.11-slim (base) | %.0f | %.2f× |\n", b / 1e6, b / s
  printf "| reference pipeline (its requirements.txt) | %.0f | 1.00× |\n", s / 1e6
  printf "| linreg-ops | %.0f | %.2f× |\n", m / 1e6, m / s
}'
