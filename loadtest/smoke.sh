#!/usr/bin/env bash
# A short run of every load scenario against a real gateway, so that the
# load generator and the gateway cannot drift apart: ~200 connections and
# 2-3 seconds per scenario, on loopback ports 18080/19090 (the echo
# example), 18081/19091 (an HTTP-integration gateway), 18082/19092 (a
# gateway with a subscribe route), 18000 (the generator's backend) and
# 18090 (the plain echo server).
#
#   bash loadtest/smoke.sh
#
# Exits non-zero when a scenario has any problem (the generator's own
# --fail-on-errors exit code). Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

. loadtest/lib.sh

# start_gateway CONFIG PORT: start a gateway and wait until PORT accepts;
# its pid is left in $gw.
start_gateway() {
	"$tmp/portico" --config "$1" 2>"$1.log" &
	gw=$!
	pids+=("$gw")
	for _ in $(seq 100); do
		if ! kill -0 "$gw" 2>/dev/null; then
			echo "smoke: the gateway did not start:"; cat "$1.log"; exit 1
		fi
		(exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "smoke: the gateway did not listen on $2 within 10s"; cat "$1.log"; exit 1
}

# run SCENARIO FLAGS...: one bounded run that must be clean.
run() {
	echo "smoke: portico-load $*"
	if ! "$load" "$@" --fail-on-errors --quiet >"$tmp/summary.json"; then
		echo "smoke: FAILED: portico-load $*"
		tail -n 20 "$tmp"/*.log 2>/dev/null || true
		exit 1
	fi
}

# The generator refuses targets off this machine before sending anything.
if "$load" echo --url ws://10.0.0.1:8080/dev --duration 1s --quiet >/dev/null 2>&1; then
	echo "smoke: a non-loopback target was accepted"; exit 1
fi

# The echo example, moved to ports 18080 (API) and 19090 (management).
sed -e 's/127\.0\.0\.1:8080/127.0.0.1:18080/' -e 's/127\.0\.0\.1:9090/127.0.0.1:19090/' \
	examples/echo/portico.yaml >"$tmp/echo.yaml"
grep -q '127.0.0.1:18080' "$tmp/echo.yaml" && grep -q '127.0.0.1:19090' "$tmp/echo.yaml" ||
	{ echo "smoke: examples/echo/portico.yaml no longer listens on 127.0.0.1:8080/9090"; exit 1; }
start_gateway "$tmp/echo.yaml" 18080
ws=ws://127.0.0.1:18080/dev
run connect --url "$ws" --connections 300 --rate 1000 --duration 2s --sources 127.0.0.2-127.0.0.3 --gateway-pid "$gw"
run echo --url "$ws" --connections 200 --depth 2 --duration 3s --gateway-pid "$gw" --compare-plain 127.0.0.1:18090
run post --url "$ws" --management http://127.0.0.1:19090 --connections 200 --clients 16 --duration 3s --gateway-pid "$gw"
kill "$gw"
wait "$gw" 2>/dev/null || true

# A gateway whose "echo" route calls the backend the generator serves.
cat >"$tmp/integration.yaml" <<'YAML'
management:
  address: 127.0.0.1:19091
apis:
  - name: smoke-integration
    listen: 127.0.0.1:18081
    stages:
      - name: dev
    routes:
      echo:
        routeResponse: true
        integration:
          type: http
          uri: http://127.0.0.1:18000/
          timeout: 10s
YAML
start_gateway "$tmp/integration.yaml" 18081
run http-integration --url ws://127.0.0.1:18081/dev --backend-listen 127.0.0.1:18000 \
	--connections 200 --duration 3s --direct-after 1s --gateway-pid "$gw"

kill "$gw"
wait "$gw" 2>/dev/null || true

# Authorization: the generator's authorizer and issuer on 18500, a
# gateway whose API on 18082 has a REQUEST authorizer and on 18083 a JWT
# one, and whose management listener (19092) takes SigV4 only.
"$load" authorizer --listen 127.0.0.1:18500 --duration 2m --token-file "$tmp/jwts.txt" --tokens 100 --aud smoke 2>"$tmp/authorizer.log" &
pids+=($!)
for _ in $(seq 100); do [[ -s $tmp/jwts.txt ]] && break; sleep 0.1; done
export PORTICO_SMOKE_SECRET=smoke-secret-not-for-production
cat >"$tmp/auth.yaml" <<'YAML'
management:
  address: 127.0.0.1:19092
  auth: iam
  credentials: [{accessKeyId: AKIDSMOKE, secretAccessKey: "${PORTICO_SMOKE_SECRET}"}]
apis:
  - name: smoke-request
    listen: 127.0.0.1:18082
    stages: [{name: dev}]
    authorizers:
      auth: {type: request, uri: "http://127.0.0.1:18500/allow", identitySource: [route.request.querystring.token]}
    routes:
      $connect: {authorizationType: CUSTOM, authorizer: auth, integration: {type: mock}}
      whoami:
        routeResponse: true
        integration: {type: mock, response: {body: '{"connectionId":"$context.connectionId"}'}}
  - name: smoke-jwt
    listen: 127.0.0.1:18083
    stages: [{name: dev}]
    authorizers:
      auth: {type: jwt, issuer: "http://127.0.0.1:18500", audience: [smoke], identitySource: [route.request.header.Authorization]}
    routes:
      $connect: {authorizationType: JWT, authorizer: auth, integration: {type: mock}}
YAML
start_gateway "$tmp/auth.yaml" 18083
run connect --url ws://127.0.0.1:18082/dev --connections 100 --duration 1s --token smoke --token-per-connection --token-query token
# One connection first: the gateway fetches the issuer's keys.
run connect --url ws://127.0.0.1:18083/dev --connections 1 --duration 10ms --token-file "$tmp/jwts.txt" --header 'Authorization: Bearer {token}'
run connect --url ws://127.0.0.1:18083/dev --connections 100 --duration 1s --token-file "$tmp/jwts.txt" --token-per-connection \
	--header 'Authorization: Bearer {token}'
AWS_SECRET_ACCESS_KEY=$PORTICO_SMOKE_SECRET run post --url ws://127.0.0.1:18082/dev --management http://127.0.0.1:19092 \
	--connections 100 --clients 8 --duration 1s --token smoke --token-query token --access-key AKIDSMOKE
# A gateway whose "subscribe" route joins the channel the message names.
cat >"$tmp/broadcast.yaml" <<'YAML'
management:
  address: 127.0.0.1:19093
apis:
  - name: smoke-broadcast
    listen: 127.0.0.1:18084
    stages:
      - name: dev
    routes:
      subscribe:
        subscribe: ["${request.body.channel}"]
        routeResponse: true
        integration: {type: mock, response: {body: subscribed}}
YAML
start_gateway "$tmp/broadcast.yaml" 18084
run broadcast --url ws://127.0.0.1:18084/dev --management http://127.0.0.1:19093 --connections 200 \
	--publishes 50 --publish-rate 50 --message-bytes 100 --duration 5s --gateway-pid "$gw"

echo "smoke: every load scenario ran clean"
