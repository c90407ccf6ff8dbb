#!/usr/bin/env bash
# Runs the README's "Run the server" commands exactly as written, from the repository root: the server
# from `dotnet run -c Release --project src/Standalone`, its key from data/key_file.json with jq, and calls with
# that key. CI runs it (.ci/run) so the first thing a new user types keeps working. Needs curl, jq and
# python3 (to write a request body), and the default ports (8080-8082, 7070-7071, 4053) free.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -e data ]; then
  echo "readme-quickstart: ./data exists; this check needs a fresh start (move it away first)" >&2
  exit 1
fi

log="$(mktemp)"
dotnet run -c Release --project src/Standalone >"$log" 2>&1 &
runner=$!

stop() {
  # `dotnet run` does not always pass SIGTERM on: signal the server it started (its child) by id, then it.
  local children
  children="$(ps -o pid= --ppid "$runner" 2>/dev/null || true)"
  for pid in $children; do kill -TERM "$pid" 2>/dev/null || true; done
  kill -TERM "$runner" 2>/dev/null || true
  for _ in $(seq 1 100); do
    kill -0 "$runner" 2>/dev/null || break
    sleep 0.1
  done
  for pid in $children "$runner"; do kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf data
}
trap stop EXIT

fail() {
  echo "readme-quickstart: $1" >&2
  echo "--- server output (last 60 lines) ---" >&2
  tail -n 60 "$log" >&2
  exit 1
}

# The first run builds in Release (minutes); then the server answers within seconds.
deadline=$((SECONDS + 900))
until curl -fsS http://127.0.0.1:8080/ping >/dev/null 2>&1; do
  kill -0 "$runner" 2>/dev/null || fail "the server exited before answering /ping"
  [ "$SECONDS" -lt "$deadline" ] || fail "no answer from /ping within 15 minutes"
  sleep 1
done

[ -f data/key_file.json ] || fail "data/key_file.json is not in the directory the command was typed in"
[ ! -e src/Standalone/data ] || fail "the server wrote its data under src/Standalone/data instead of ./data"

# The README's commands, as written.
key=$(jq -r .inference.key data/key_file.json)
[ -n "$key" ] && [ "$key" != null ] || fail "no inference key in data/key_file.json"

until curl -fsS http://127.0.0.1:8080/v2/health/ready 2>/dev/null | grep -q '"ready":true'; do
  [ "$SECONDS" -lt "$deadline" ] || fail "/v2/health/ready did not say ready within 15 minutes"
  sleep 1
done

curl -fsS -H "Authorization: Bearer $key" http://127.0.0.1:8080/v2/models/resnet18 | grep -q '"name":"resnet18"' \
  || fail "the metadata of resnet18 did not answer with the key"
status=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8080/v2/models/resnet18)
[ "$status" = 401 ] || fail "the metadata answered $status without a key (expected 401)"

# One forward pass through the embedded model: an all-zero preprocessed image over the Open Inference Protocol.
body="$(mktemp)"
python3 -c 'import json,sys; json.dump({"inputs":[{"name":"data","shape":[1,3,224,224],"datatype":"FP32","data":[0]*(3*224*224)}]}, sys.stdout)' >"$body"
curl -fsS -H "Authorization: Bearer $key" -H 'Content-Type: application/json' --data-binary "@$body" \
  http://127.0.0.1:8080/v2/models/resnet18/infer | grep -q '"outputs"' || fail "inference with the key failed"
rm -f "$body"

echo "readme-quickstart: the README's server commands work as written (key in $(pwd)/data/key_file.json)"
