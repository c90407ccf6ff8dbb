#!/usr/bin/env bash
# A Serve cluster on this machine: one gateway process and N worker processes on loopback.
#
#   scripts/cluster-local.sh start [N]   build (Release), start a gateway and N workers (default 2),
#                                        wait until every model is ready, print where things listen
#   scripts/cluster-local.sh stop        stop every process this script started (by its pid)
#   scripts/cluster-local.sh status      show the processes and the gateway's readiness
#
# Without MODELS the cluster serves the embedded default model (resnet18, seeded weights) with one
# replica per worker. To serve your own TorchScript files:
#   MODEL_STORE=/path/to/store MODELS='tiny=tiny.pt?replicas=2&batch_size=8' scripts/cluster-local.sh start 2
#
# Ports (override with the variables): inference 8080, management 8081, metrics 8082, gRPC inference
# 7070 and management 7071 (TorchServe's),
# cluster 4053 for the gateway and 4054.. for the workers.
#
# The nodes talk over mutual TLS with one cluster certificate, made on the first start in
# .serve-local/cluster.p12 (with the worker's 'cluster-certificate' command) and kept for later starts.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
state="$root/.serve-local"
inference_port=${INFERENCE_PORT:-8080}
management_port=${MANAGEMENT_PORT:-8081}
metrics_port=${METRICS_PORT:-8082}
grpc_inference_port=${GRPC_INFERENCE_PORT:-7070}
grpc_management_port=${GRPC_MANAGEMENT_PORT:-7071}
cluster_port=${CLUSTER_PORT:-4053}
seed="akka.ssl.tcp://serve@127.0.0.1:$cluster_port"
certificate="$state/cluster.p12"
gateway_dll="$root/src/Gateway/bin/Release/net10.0/Serve.Gateway.dll"
node_dll="$root/src/Node/bin/Release/net10.0/Serve.Node.dll"

log() { printf '%s\n' "$*" >&2; }

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

start() {
  local workers=${1:-2}
  if ! [[ "$workers" =~ ^[1-9][0-9]*$ ]]; then
    log "usage: $0 start [N]   (N = number of workers, at least 1)"
    exit 2
  fi
  mkdir -p "$state"
  for pidfile in "$state"/*.pid; do
    if running "$pidfile"; then
      log "a local cluster is already running (see $0 status); stop it first"
      exit 1
    fi
  done
  rm -f "$state"/*.pid "$state"/*.log

  log "building (Release)..."
  { dotnet build "$root/src/Gateway/Serve.Gateway.csproj" -c Release -nologo -v quiet \
      && dotnet build "$root/src/Node/Serve.Node.csproj" -c Release -nologo -v quiet; } >"$state/build.log" 2>&1 \
    || { log "build failed; see $state/build.log"; exit 1; }

  if [ ! -f "$certificate" ]; then
    dotnet "$node_dll" cluster-certificate "$certificate" >&2 || { log "could not create the cluster certificate"; exit 1; }
  fi
  export Serve__Cluster__Tls__Keystore="$certificate"

  local model_args=()
  if [ -n "${MODELS:-}" ]; then
    model_args+=(--models "$MODELS")
    [ -n "${MODEL_STORE:-}" ] && model_args+=(--model-store "$MODEL_STORE")
  fi
  local store_args=()
  [ -n "${MODEL_STORE:-}" ] && store_args+=(--model-store "$MODEL_STORE")

  Serve__DefaultModel__Enabled=$([ -z "${MODELS:-}" ] && echo true || echo false) \
  Serve__DefaultWorkersPerModel="$workers" \
  nohup dotnet "$gateway_dll" \
    --inference-address "http://127.0.0.1:$inference_port" \
    --management-address "http://127.0.0.1:$management_port" \
    --metrics-address "http://127.0.0.1:$metrics_port" \
    --grpc-inference-address "http://127.0.0.1:$grpc_inference_port" \
    --grpc-management-address "http://127.0.0.1:$grpc_management_port" \
    --cluster-port "$cluster_port" --seed "$seed" --data-dir "$state/data" \
    "${model_args[@]}" >"$state/gateway.log" 2>&1 &
  echo $! >"$state/gateway.pid"

  for i in $(seq 1 "$workers"); do
    nohup dotnet "$node_dll" \
      --cluster-port $((cluster_port + i)) --seed "$seed" \
      "${store_args[@]}" >"$state/worker-$i.log" 2>&1 &
    echo $! >"$state/worker-$i.pid"
  done

  log "waiting for the cluster (every model ready)..."
  local deadline=$((SECONDS + 120))
  until curl -fsS -m 2 "http://127.0.0.1:$inference_port/v2/health/ready" >/dev/null 2>&1; do
    for pidfile in "$state"/*.pid; do
      if ! running "$pidfile"; then
        log "$(basename "$pidfile" .pid) exited; its log: ${pidfile%.pid}.log"
        tail -n 20 "${pidfile%.pid}.log" >&2 || true
        stop
        exit 1
      fi
    done
    if [ $SECONDS -ge $deadline ]; then
      log "not ready after 120 s; logs are in $state"
      exit 1
    fi
    sleep 0.5
  done
  status
  cat <<EOT

Try it (the API keys are in $state/data/key_file.json):
  curl http://127.0.0.1:$inference_port/ping
  key=\$(jq -r .inference.key $state/data/key_file.json)
  curl -H "Authorization: Bearer \$key" -X POST http://127.0.0.1:$inference_port/predictions/resnet18 -T some-image.jpg
Stop it:
  $0 stop
EOT
}

status() {
  printf '%-10s %-8s %-7s %s\n' PROCESS PID STATE LISTENS
  if [ -f "$state/gateway.pid" ]; then
    printf '%-10s %-8s %-7s %s\n' gateway "$(cat "$state/gateway.pid")" "$(running "$state/gateway.pid" && echo up || echo down)" \
      "inference http://127.0.0.1:$inference_port  management http://127.0.0.1:$management_port  metrics http://127.0.0.1:$metrics_port  grpc 127.0.0.1:$grpc_inference_port/$grpc_management_port  cluster $seed"
  fi
  for pidfile in "$state"/worker-*.pid; do
    [ -f "$pidfile" ] || continue
    local name i
    name=$(basename "$pidfile" .pid)
    i=${name#worker-}
    printf '%-10s %-8s %-7s %s\n' "$name" "$(cat "$pidfile")" "$(running "$pidfile" && echo up || echo down)" \
      "cluster akka.ssl.tcp://serve@127.0.0.1:$((cluster_port + i))"
  done
  if curl -fsS -m 2 "http://127.0.0.1:$inference_port/v2/health/ready" >/dev/null 2>&1; then
    echo "ready: every model has a serving replica (logs in $state)"
  else
    echo "not ready (logs in $state)"
  fi
}

stop() {
  [ -d "$state" ] || return 0
  local pids=()
  for pidfile in "$state"/worker-*.pid "$state"/gateway.pid; do
    [ -f "$pidfile" ] || continue
    if running "$pidfile"; then
      kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
      pids+=("$(cat "$pidfile")")
    fi
  done
  # SIGTERM lets each node leave the cluster and hand its replicas off; give it 20 s.
  local deadline=$((SECONDS + 20))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
  done
  rm -f "$state"/*.pid
  log "stopped ${#pids[@]} process(es)"
}

case "${1:-}" in
  start) start "${2:-2}" ;;
  stop) stop ;;
  status) status ;;
  *) log "usage: $0 start [N] | stop | status"; exit 2 ;;
esac
