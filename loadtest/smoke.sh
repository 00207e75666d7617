#!/usr/bin/env bash
# A short run of every load scenario against a real gateway, so the load
# generator cannot rot: a few hundred connections, a few seconds each, on
# loopback ports 18080 (WebSocket), 19090 (management) and 18000 (backend).
# Exits non-zero if any scenario lost a connection or a message.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/portico" ./cmd/portico
go build -o "$tmp/portico-load" ./cmd/portico-load

cat > "$tmp/portico.yaml" <<'YAML'
management: {address: 127.0.0.1:19090}
apis:
  - name: smoke
    listen: 127.0.0.1:18080
    stages:
      - name: dev
        variables: {backend: "http://127.0.0.1:18000"}
    routes:
      echo:
        routeResponse: true
        integration: {type: mock, response: {body: $request.body.data}}
      whoami:
        routeResponse: true
        integration: {type: mock, response: {body: '{"connectionId":"$context.connectionId"}'}}
      becho:
        routeResponse: true
        integration: {type: http, uri: "${stageVariables.backend}/"}
YAML

"$tmp/portico-load" backend --listen 127.0.0.1:18000 2>"$tmp/backend.log" & pids+=($!)
"$tmp/portico" --config "$tmp/portico.yaml" 2>"$tmp/gateway.log" & gw=$!; pids+=($gw)
for _ in $(seq 50); do
	(exec 3<>/dev/tcp/127.0.0.1/18080) 2>/dev/null && break
	sleep 0.1
done

run() { "$tmp/portico-load" "$@" --url ws://127.0.0.1:18080/dev --gateway-pid "$gw" --fail-on-errors >/dev/null; }
run connect --connections 300 --hold 2s
run echo --connections 200 --duration 3s
run post --connections 200 --management http://127.0.0.1:19090/dev --duration 3s
run http-integration --connections 100 --action becho --backend http://127.0.0.1:18000/ --duration 3s
echo "load smoke: all scenarios passed"
