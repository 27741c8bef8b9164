#!/usr/bin/env bash
# Build the image and test it as a user would: the default command offline, the HTTP service
# from the host, a non-root user, and the image size against the reference pipeline's.
# Usage: scripts/container-test.sh [image-tag]   (from the repository root, after `make run`)
set -euo pipefail
image=${1:-linreg-ops:local}
engine=../shared/tools/container-engine
# 0.55 × the reference image (692 MB on the 191 MB python:3.11-slim): pyarrow, the one table
# reader (the stored test split and CSV request bodies), is about 90 MB of it.
max_mb=${MAX_IMAGE_MB:-380}

say() { printf '\n== %s\n' "$*"; }
fail() { echo "container-test: FAIL: $*" >&2; exit 1; }

if ! docker info >/dev/null 2>&1; then
  [ -x "$engine" ] || fail "no Docker engine answers and $engine is not there to start one"
  say "starting a local engine ($engine up)"
  "$engine" up
fi
[ -e models/current ] || fail "models/ holds no published version: run 'make run' first"

say "build $image"
docker build --network host -t "$image" .

say "default command, --network none"
output=$(docker run --rm --network none "$image")
echo "$output"
grep -q "R² Score: 0.5758" <<<"$output" || fail "the default command did not print R² Score: 0.5758"
[ "$(grep -c '^True: ' <<<"$output")" -eq 10 ] || fail "expected the first 10 predictions"

say "models: the current version only, no pickles"
docker run --rm --network none "$image" sh -c 'ls -R models' | head -20
pickles=$(docker run --rm --network none "$image" find models -name '*.joblib' -o -name '*.pkl')
[ -z "$pickles" ] || fail "the image holds pickles: $pickles"

say "user"
uid=$(docker run --rm --network none "$image" id -u)
echo "uid $uid"
[ "$uid" != 0 ] || fail "the container runs as root"

say "serve"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
container=$(docker run -d --rm -p "127.0.0.1:$port:8000" "$image" linreg-ops serve --host 0.0.0.0)
trap 'docker stop "$container" >/dev/null 2>&1 || true' EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$port/health" || fail "/health did not answer"
echo
response=$(curl -fsS -X POST "http://127.0.0.1:$port/predict" -H 'content-type: application/json' \
  -d '{"instances": [[8.3252, 41.0, 6.984127, 1.02381, 322.0, 2.555556, 37.88, -122.23]], "model": "quantized"}')
echo "$response"
grep -q '"predictions":\[4\.' <<<"$response" || fail "/predict did not return the expected prediction"
csv_response=$(printf 'MedInc,HouseAge,AveRooms,AveBedrms,Population,AveOccup,Latitude,Longitude\r\n"8.3252",41,6.984127,1.02381,322,2.555556,37.88,-122.23\r\n' \
  | curl -fsS -X POST "http://127.0.0.1:$port/invocations" -H 'content-type: text/csv' --data-binary @-)
echo "$csv_response"
grep -q '"predictions":\[4\.' <<<"$csv_response" || fail "/invocations did not read a CSV body"
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/predict" \
  -H 'content-type: application/json' -d '{"instances": [[1, 2]]}')
[ "$status" = 422 ] || fail "a bad /predict body gave $status, expected 422"

say "size"
bytes=$(docker image inspect -f '{{.Size}}' "$image")
mb=$((bytes / 1000000))
echo "$image: $mb MB (limit $max_mb MB)"
[ "$mb" -le "$max_mb" ] || fail "image is $mb MB, above $max_mb MB"
echo "container-test: OK"
