#!/usr/bin/env bash
# The benchmarks behind BENCHMARKS.md, each bounded in connections and
# time, on loopback only. Usage:
#
#   bash loadtest/bench.sh [idle|connect|echo|post|http|proxy|throttle|reuseport|registry|crossnode|disconnect|reregister|auth|broadcast|broadcast100k|tls|compare|observability|all]
#
# compare, broadcast100k (not part of all): compare runs Portico and the
# plain gorilla server back to back with the same generator flags;
# broadcast100k spreads 100,000 subscribers over seven gateways. See their
# sections below.
#
# Results (JSON summaries) go to $OUT (default ./bench-results). Every
# process the script starts is stopped when it ends.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
OUT=${OUT:-$PWD/bench-results}
mkdir -p "$OUT"
. loadtest/lib.sh
SRC=127.0.0.2-127.0.0.9

# gateway MODE WSPORT MGMTPORT [extra top-level yaml]: start a gateway; its pid is left in $GW.
# MGMT_EXTRA (", key: value" pairs added to management), API_EXTRA (keys
# of the API, indented by four spaces), STAGE_EXTRA (keys of the stage,
# indented by eight) and CONNECT_AUTH (keys of the $connect route,
# indented by eight) change it when set.
gateway() {
	local mode=$1 ws=$2 mg=$3 extra=${4:-}
	cat > "$tmp/gw-$ws-$mg.yaml" <<YAML
management: {address: 127.0.0.1:$mg, pprof: true${MGMT_EXTRA:-}}
connections: {mode: $mode}
$extra
apis:
  - name: bench
    listen: 127.0.0.1:$ws
${API_EXTRA:-}
    stages:
      - name: dev
        variables: {backend: "http://127.0.0.1:18000"}
${STAGE_EXTRA:-}
    routes:
      \$connect:
        integration: {type: mock}
${CONNECT_AUTH:-}
      echo:
        routeResponse: true
        integration: {type: mock, response: {body: \$request.body.data}}
      whoami:
        routeResponse: true
        integration: {type: mock, response: {body: '{"connectionId":"\$context.connectionId"}'}}
      becho:
        routeResponse: true
        integration: {type: http, uri: "\${stageVariables.backend}/"}
      subscribe:
        subscribe: ["\${request.body.channel}"]
        routeResponse: true
        integration: {type: mock, response: {body: subscribed}}
YAML
	"$tmp/portico" --config "$tmp/gw-$ws-$mg.yaml" >/dev/null 2>"$tmp/gw-$ws-$mg.log" &
	GW=$!
	pids+=("$GW")
	# /readyz answers once every listener of this process is bound (with
	# reusePort, the API port may already answer through another process).
	for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$mg/readyz" && break; sleep 0.1; done
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

if [[ $what == idle || $what == all ]]; then
	for mode in epoll goroutine; do
		gateway "$mode" 18080 19090; gw=$GW
		"$load" connect --url ws://127.0.0.1:18080/dev --connections 15000 --rate 5000 --hold 20s \
			--sources "$SRC" --gateway-pid "$gw" --json "$OUT/idle-$mode.json" >/dev/null
		stop "$gw"
	done
fi
if [[ $what == connect || $what == all ]]; then
	for mode in epoll goroutine; do
		gateway "$mode" 18080 19090; gw=$GW
		"$load" connect --url ws://127.0.0.1:18080/dev --connections 19000 --concurrency 512 --hold 1s \
			--sources "$SRC" --gateway-pid "$gw" --json "$OUT/connect-rate-$mode.json" >/dev/null
		stop "$gw"
	done
fi
if [[ $what == echo || $what == all ]]; then
	for mode in epoll goroutine; do
		gateway "$mode" 18080 19090; gw=$GW
		"$load" echo --url ws://127.0.0.1:18080/dev --connections 10000 --rate 5000 --duration 10s \
			--sources "$SRC" --gateway-pid "$gw" --json "$OUT/echo-closed-$mode.json" >/dev/null
		"$load" echo --url ws://127.0.0.1:18080/dev --connections 10000 --rate 5000 --depth 8 --duration 10s \
			--sources "$SRC" --gateway-pid "$gw" --json "$OUT/echo-depth8-$mode.json" >/dev/null
		"$load" echo --url ws://127.0.0.1:18080/dev --connections 10000 --rate 5000 --msg-rate 30000 --duration 10s \
			--sources "$SRC" --gateway-pid "$gw" --json "$OUT/echo-open30k-$mode.json" >/dev/null
		stop "$gw"
	done
	"$load" plain-echo --listen 127.0.0.1:18090 >/dev/null 2>&1 &
	pe=$!
	pids+=("$pe")
	sleep 0.3
	"$load" echo --url ws://127.0.0.1:18090/ --connections 10000 --rate 5000 --duration 10s \
		--sources "$SRC" --gateway-pid "$pe" --json "$OUT/echo-closed-plain.json" >/dev/null
	"$load" echo --url ws://127.0.0.1:18090/ --connections 10000 --rate 5000 --depth 8 --duration 10s \
		--sources "$SRC" --gateway-pid "$pe" --json "$OUT/echo-depth8-plain.json" >/dev/null
	stop "$pe"
fi
if [[ $what == post || $what == all ]]; then
	for mode in epoll goroutine; do
		gateway "$mode" 18080 19090; gw=$GW
		"$load" post --url ws://127.0.0.1:18080/dev --management http://127.0.0.1:19090/dev --connections 1000 \
			--clients 64 --duration 10s --gateway-pid "$gw" --json "$OUT/post-$mode.json" >/dev/null &
		lp=$!
		sleep 4 # profile the gateway in the middle of the run
		curl -s "http://127.0.0.1:19090/debug/pprof/profile?seconds=4" >"$OUT/post-$mode.pprof" || true
		wait "$lp"
		stop "$gw"
	done
fi
if [[ $what == http || $what == all ]]; then
	"$load" backend --listen 127.0.0.1:18000 >/dev/null 2>&1 &
	be=$!
	pids+=("$be")
	for mode in epoll goroutine; do
		gateway "$mode" 18080 19090; gw=$GW
		"$load" http-integration --url ws://127.0.0.1:18080/dev --connections 1000 --action becho \
			--backend http://127.0.0.1:18000/ --duration 10s --gateway-pid "$gw" --json "$OUT/http-integration-$mode.json" >/dev/null &
		lp=$!
		sleep 4
		curl -s "http://127.0.0.1:19090/debug/pprof/profile?seconds=4" >"$OUT/http-integration-$mode.pprof" || true
		wait "$lp"
		# The same at a fixed rate below saturation (HTTP_RATE messages/s,
		# open loop): the latency the gateway adds when it is not queueing.
		# The backend times its own work; "gatewayAddedOverBackend" is
		# the round trip minus it, "gatewayAdded" minus direct calls.
		"$load" http-integration --url ws://127.0.0.1:18080/dev --connections 1000 --action becho \
			--backend http://127.0.0.1:18000/ --msg-rate "${HTTP_RATE:-5000}" --duration 10s --gateway-pid "$gw" \
			--json "$OUT/http-integration-rate-$mode.json" >/dev/null
		stop "$gw"
	done
	stop "$be"
fi
if [[ $what == reuseport || $what == all ]]; then
	# Four gateway processes share port 18080; four generator processes
	# hold 15,000 connections each from their own source addresses.
	gws=()
	for i in 1 2 3 4; do gateway epoll 18080 "1909$i" 'listen: {reusePort: true}'; gws+=("$GW"); done
	gpids=$(IFS=,; echo "${gws[*]}")
	lpids=()
	for i in 1 2 3 4; do
		"$load" connect --url ws://127.0.0.1:18080/dev --connections 15000 --rate 2500 --hold 30s \
			--sources "127.0.$i.2-127.0.$i.5" --gateway-pid "$gpids" --json "$OUT/reuseport-gen$i.json" >/dev/null 2>"$tmp/gen$i.log" &
		lpids+=($!)
	done
	sleep 15
	for i in 1 2 3 4; do
		printf 'gateway %d holds %s connections\n' "$i" \
			"$(curl -s "http://127.0.0.1:1909$i/metrics" | awk '/^portico_connections_open/ {print $2}')"
	done | tee "$OUT/reuseport-split.txt"
	for p in "${lpids[@]}"; do wait "$p"; done
	cat "$tmp"/gen*.log "$tmp"/gw-*.log
fi
if [[ $what == registry || $what == all ]]; then
	# Connect and @connections rates with each registry, and a post
	# through a node other than the connection's owner (Redis relay).
	redis-server --port 16379 --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
	pids+=($!)
	node node_modules/.bin/dynalite --host 127.0.0.1 --port 14567 >/dev/null 2>&1 &
	pids+=($!)
	sleep 1
	declare -A store=(
		[memory]='storage: {type: memory}'
		[redis]='storage: {type: redis, redis: {addrs: ["127.0.0.1:16379"]}}'
		[dynamodb]='storage: {type: dynamodb, dynamodb: {endpoint: "http://127.0.0.1:14567", region: us-east-1, table: bench, createTable: true}}'
	)
	for s in memory redis dynamodb; do
		gateway epoll 18080 19090 "${store[$s]}"; gw=$GW
		"$load" connect --url ws://127.0.0.1:18080/dev --connections 5000 --concurrency 256 --hold 1s \
			--sources "$SRC" --gateway-pid "$gw" --json "$OUT/registry-connect-$s.json" >/dev/null
		"$load" post --url ws://127.0.0.1:18080/dev --management http://127.0.0.1:19090/dev --connections 500 \
			--clients 64 --duration 5s --gateway-pid "$gw" --json "$OUT/registry-post-$s.json" >/dev/null
		stop "$gw"
	done
	gateway epoll 18080 19090 "${store[redis]}"; a=$GW
	gateway epoll 18081 19091 "${store[redis]}"; b=$GW
	"$load" post --url ws://127.0.0.1:18080/dev --management http://127.0.0.1:19091/dev --connections 500 \
		--clients 64 --duration 5s --gateway-pid "$a,$b" --json "$OUT/registry-post-crossnode.json" >/dev/null
	# Latency below saturation: 2,000 posts/s from 8 clients, through the
	# owner (local) and through the other node (cross-node).
	for via in local:19090 crossnode:19091; do
		"$load" post --url ws://127.0.0.1:18080/dev --management "http://127.0.0.1:${via#*:}/dev" --connections 500 \
			--clients 8 --post-rate 2000 --duration 10s --gateway-pid "$a,$b" --json "$OUT/registry-post-paced-${via%%:*}.json" >/dev/null
	done
	stop "$a"; stop "$b"
	# Three nodes sharing port 18080 (reusePort) and one registry: connect
	# rate over all three, and posts through node 1, which the other two
	# nodes' connections (about two in three) reach across nodes. With the
	# memory registry each node knows only its own connections: connect only.
	store[dynamodb]='storage: {type: dynamodb, relaySecret: bench, dynamodb: {endpoint: "http://127.0.0.1:14567", region: us-east-1, table: bench, createTable: true}}'
	for s in memory redis dynamodb; do
		gws=()
		for i in 1 2 3; do gateway epoll 18080 "1909$i" "listen: {reusePort: true}
${store[$s]}"; gws+=("$GW"); done
		gpids=$(IFS=,; echo "${gws[*]}")
		"$load" connect --url ws://127.0.0.1:18080/dev --connections 5000 --concurrency 256 --hold 1s \
			--sources "$SRC" --gateway-pid "$gpids" --json "$OUT/registry3-connect-$s.json" >/dev/null
		if [[ $s != memory ]]; then
			"$load" post --url ws://127.0.0.1:18080/dev --management http://127.0.0.1:19091/dev --connections 500 \
				--clients 64 --duration 5s --gateway-pid "$gpids" --json "$OUT/registry3-post-$s.json" >/dev/null
		fi
		for g in "${gws[@]}"; do stop "$g"; done
	done
fi
if [[ $what == crossnode || $what == all ]]; then
	# Cross-node against local @connections latency (Redis relay), in
	# REPS alternating pairs so that the machine's drift hits both sides:
	# clients on node A; posts through A (local) or through B (cross-node),
	# paced at 2,000/s from 8 clients and at 5,000/s from 32, then
	# closed-loop from 64 clients. At the paced rates, redis-echo also
	# measures the relay's two Redis hops alone (no gateway work).
	redis-server --port 16379 --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
	pids+=($!)
	sleep 1
	redis='storage: {type: redis, redis: {addrs: ["127.0.0.1:16379"]}}'
	gateway epoll 18080 19090 "$redis"; a=$GW
	gateway epoll 18081 19091 "$redis"; b=$GW
	# The relay's two Redis hops alone, at the paced rates: the floor
	# under what a cross-node post adds to a local one.
	"$load" redis-echo --serve --redis 127.0.0.1:16379 --duration 30m 2>/dev/null &
	pids+=($!)
	for load_kind in "paced:--clients 8 --post-rate 2000 --duration 5s" "paced5k:--clients 32 --post-rate 5000 --duration 5s" \
		"load:--clients 64 --duration 5s"; do
		for r in $(seq "${REPS:-3}"); do
			for via in local:19090 cross:19091; do
				# shellcheck disable=SC2086 # the flags are split on purpose
				"$load" post --url ws://127.0.0.1:18080/dev --management "http://127.0.0.1:${via#*:}/dev" --connections 500 \
					${load_kind#*:} --gateway-pid "$a,$b" --json "$OUT/crossnode-${load_kind%%:*}-${via%%:*}-$r.json" >/dev/null
			done
			rate=$(sed -n 's/.*--post-rate \([0-9]*\).*/\1/p' <<<"${load_kind#*:}")
			if [[ -n $rate ]]; then
				"$load" redis-echo --redis 127.0.0.1:16379 --rate "$rate" --duration 5s >"$OUT/crossnode-${load_kind%%:*}-redisecho-$r.json"
			fi
			if command -v jq >/dev/null; then
				if [[ -n $rate ]]; then
					jq -r --arg k "${load_kind%%:*} $r" '"\($k) redis-echo: round trip p50 \(.redisEcho.p50Ms) ms at \(.perSecond|floor)/s"' \
						"$OUT/crossnode-${load_kind%%:*}-redisecho-$r.json"
				fi
				for v in local cross; do
					jq -r --arg k "${load_kind%%:*} $r $v" '.post | "\($k): \(.perSecond|floor) posts/s, HTTP p50 \(.http.p50Ms) ms, delivery p50 \(.delivery.p50Ms) ms, \(.statuses)"' \
						"$OUT/crossnode-${load_kind%%:*}-$v-$r.json"
				done
			fi
		done
	done
	stop "$a"; stop "$b"
fi
if [[ $what == disconnect || $what == all ]]; then
	# A mass disconnect with the Redis registry: 18,000 connections close
	# at once (the generator's end of hold); how long until the gateway
	# has deleted all their records (its node set in Redis is empty).
	redis-server --port 16379 --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
	pids+=($!)
	sleep 1
	for r in $(seq "${REPS:-3}"); do
		redis-cli -p 16379 flushall >/dev/null
		gateway epoll 18080 19090 'storage: {type: redis, redis: {addrs: ["127.0.0.1:16379"]}}'; gw=$GW
		"$load" connect --url ws://127.0.0.1:18080/dev --connections 18000 --concurrency 256 --hold 2s --drain 30s \
			--sources "$SRC" --gateway-pid "$gw" --json "$OUT/disconnect-$r.json" >/dev/null 2>&1 &
		gen=$!
		set_key=""
		until [[ -n $set_key ]] && (($(redis-cli -p 16379 scard "$set_key") >= 18000)); do
			set_key=$(redis-cli -p 16379 --scan --pattern '*:conns' | head -1)
			sleep 0.1
		done
		while (($(redis-cli -p 16379 scard "$set_key") >= 18000)); do sleep 0.02; done
		t0=$(date +%s.%N)
		while (($(redis-cli -p 16379 scard "$set_key") > 0)); do sleep 0.02; done
		t1=$(date +%s.%N)
		wait "$gen" || true
		echo "disconnect $r: 18000 records deleted $(echo "$t1 - $t0" | bc) s after the first deletion" | tee -a "$OUT/disconnect.txt"
		stop "$gw"
	done
fi
if [[ $what == reregister || $what == all ]]; then
	# A Redis outage under 18,000 open connections: Redis stops (nothing
	# saved) and an empty one starts on the same port; how long until the
	# gateway has put every open connection back (its node set holds
	# 18,000 ids again), counted from the new Redis answering.
	redis_up() {
		redis-server --port 16379 --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
		REDIS=$!
		pids+=("$REDIS")
		until redis-cli -p 16379 ping >/dev/null 2>&1; do sleep 0.02; done
	}
	conns_of_node() {
		local k
		k=$(redis-cli -p 16379 --scan --pattern '*:conns' | head -1)
		if [[ -n $k ]]; then redis-cli -p 16379 scard "$k"; else echo 0; fi
	}
	for r in $(seq "${REPS:-3}"); do
		redis_up
		gateway epoll 18080 19090 'storage: {type: redis, nodeTTL: 6s, redis: {addrs: ["127.0.0.1:16379"]}}'; gw=$GW
		"$load" connect --url ws://127.0.0.1:18080/dev --connections 18000 --concurrency 256 --hold 30s --drain 30s \
			--sources "$SRC" --gateway-pid "$gw" --json "$OUT/reregister-$r.json" >/dev/null 2>&1 &
		gen=$!
		until (($(conns_of_node) >= 18000)); do sleep 0.1; done
		redis-cli -p 16379 shutdown nosave >/dev/null 2>&1 || true
		wait "$REDIS" 2>/dev/null || true
		until curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:19090/readyz | grep -q 503; do sleep 0.1; done
		redis_up
		t0=$(date +%s.%N)
		n=0
		# The generator holds its connections 30 s: give up after 20.
		until ((n >= 18000)) || (($(echo "$(date +%s.%N) - $t0 > 20" | bc))); do sleep 0.02; n=$(conns_of_node); done
		t1=$(date +%s.%N)
		if ((n >= 18000)); then
			echo "reregister $r: 18000 connections registered again $(echo "$t1 - $t0" | bc) s after Redis came back" | tee -a "$OUT/reregister.txt"
		else
			echo "reregister $r: only $n of 18000 connections registered again 20 s after Redis came back" | tee -a "$OUT/reregister.txt"
		fi
		grep -h 'written again\|reachable again' "$tmp"/gw-18080-19090.log | tail -2 >> "$OUT/reregister.txt" || true
		stop "$gw"
		wait "$gen" || true
		stop "$REDIS"
	done
fi
if [[ $what == auth || $what == all ]]; then
	# The cost of authorizing $connect and of signed @connections calls,
	# against no authorization in the same run: a fresh gateway per
	# variant and round, REPS rounds alternating the variants so that the
	# machine's drift hits them all alike. Connect variants: NONE; CUSTOM
	# with a REQUEST authorizer (resultTtl 300s) and a TOKEN authorizer,
	# each with one shared token (cached: one authorizer call) and with a
	# token per connection (uncached: a call per connection); JWT with one
	# shared RS256 token (jwt-cached: its signature verified once, then
	# from the verified-token cache) and with a distinct token per
	# connection (jwt: every signature verified on the gateway). The
	# authorizer and the issuer are portico-load authorizer.
	# Then posts to a gateway with management.auth none and one with iam
	# (every POST SigV4-signed by the generator, as an SDK signs it).
	conns=${AUTH_CONNECTIONS:-15000}
	posts_for=${AUTH_POST_DURATION:-10s}
	iss=http://127.0.0.1:18500
	rm -f "$tmp/jwts.txt"
	"$load" authorizer --listen 127.0.0.1:18500 --duration 1h --token-file "$tmp/jwts.txt" --tokens "$conns" --aud bench \
		2>"$tmp/authorizer.log" &
	authz=$!
	pids+=("$authz")
	for _ in $(seq 600); do [[ -s $tmp/jwts.txt ]] && break; sleep 0.1; done
	[[ -s $tmp/jwts.txt ]] || { echo "auth: the authorizer wrote no tokens within 60 s"; cat "$tmp/authorizer.log"; exit 1; }
	export PORTICO_BENCH_SECRET
	PORTICO_BENCH_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
	request_api="    authorizers:
      auth: {type: request, uri: \"$iss/allow\", identitySource: [route.request.querystring.token], resultTtl: 300s}"
	token_api="    authorizers:
      auth: {type: token, uri: \"$iss/allow\", identitySource: [method.request.header.Authorization], resultTtl: 300s}"
	jwt_api="    authorizers:
      auth: {type: jwt, issuer: \"$iss\", audience: [bench], identitySource: [route.request.querystring.token]}"
	custom="        authorizationType: CUSTOM
        authorizer: auth"
	jwt="        authorizationType: JWT
        authorizer: auth"
	# variant -> "API_EXTRA|CONNECT_AUTH|generator flags|warm-up flags" (API_EXTRA and
	# CONNECT_AUTH name the variables above). The warm-up (one connection
	# with another token) opens the authorizer's HTTP connection or fetches
	# the issuer's keys before the timed run.
	declare -A variant=(
		[none]="||"
		[request-cached]="request_api|custom|--token shared-ROUND --token-query token|--token warm-ROUND --token-query token"
		[request-uncached]="request_api|custom|--token u-ROUND --token-per-connection --token-query token|--token warm-ROUND --token-query token"
		[token-cached]="token_api|custom|--token shared-ROUND --header Authorization:{token}|--token warm-ROUND --header Authorization:{token}"
		[token-uncached]="token_api|custom|--token u-ROUND --token-per-connection --header Authorization:{token}|--token warm-ROUND --header Authorization:{token}"
		[jwt-cached]="jwt_api|jwt|--token-file $tmp/jwts.txt --token-query token|--token-file $tmp/jwts.txt --token-query token"
		[jwt]="jwt_api|jwt|--token-file $tmp/jwts.txt --token-per-connection --token-query token|--token-file $tmp/jwts.txt --token-query token"
	)
	order=(none request-cached request-uncached token-cached token-uncached jwt-cached jwt)
	for r in $(seq "${REPS:-3}"); do
		for v in "${order[@]}"; do
			IFS='|' read -r api_var auth_var flags warm <<<"${variant[$v]}"
			API_EXTRA=${api_var:+${!api_var}} CONNECT_AUTH=${auth_var:+${!auth_var}} gateway epoll 18280 19290; gw=$GW
			# shellcheck disable=SC2086 # the flags are split on purpose
			"$load" connect --url ws://127.0.0.1:18280/dev --connections 1 --hold 10ms --quiet ${warm//ROUND/$r} >/dev/null 2>&1 || true
			# shellcheck disable=SC2086
			"$load" connect --url ws://127.0.0.1:18280/dev --connections "$conns" --concurrency 256 --hold 1s \
				--sources "$SRC" --gateway-pid "$gw" ${flags//ROUND/$r} --json "$OUT/auth-connect-$v-$r.json" >/dev/null 2>>"$tmp/auth-load.log" || true
			stop "$gw"
		done
		for m in none iam; do
			if [[ $m == iam ]]; then
				MGMT_EXTRA=", auth: iam, region: us-east-1, credentials: [{accessKeyId: AKIDPORTICOBENCH, secretAccessKey: \"\${PORTICO_BENCH_SECRET}\"}]" \
					gateway epoll 18280 19290; gw=$GW
				sign=(--access-key AKIDPORTICOBENCH --region us-east-1)
			else
				gateway epoll 18280 19290; gw=$GW
				sign=()
			fi
			AWS_SECRET_ACCESS_KEY=$PORTICO_BENCH_SECRET "$load" post --url ws://127.0.0.1:18280/dev --management http://127.0.0.1:19290/dev \
				--connections 500 --clients 64 --duration "$posts_for" "${sign[@]}" --gateway-pid "$gw" \
				--json "$OUT/auth-post-$m-$r.json" >/dev/null 2>>"$tmp/auth-load.log" || true
			stop "$gw"
		done
	done
	# Memory per idle connection behind each cached authorizer: 15,000
	# connections dialled at 5,000/s and held 10 s (as bench.sh idle).
	for v in none request-cached jwt-cached; do
		IFS='|' read -r api_var auth_var flags warm <<<"${variant[$v]}"
		API_EXTRA=${api_var:+${!api_var}} CONNECT_AUTH=${auth_var:+${!auth_var}} gateway epoll 18280 19290; gw=$GW
		# shellcheck disable=SC2086
		"$load" connect --url ws://127.0.0.1:18280/dev --connections 1 --hold 10ms --quiet ${warm//ROUND/1} >/dev/null 2>&1 || true
		# shellcheck disable=SC2086
		"$load" connect --url ws://127.0.0.1:18280/dev --connections "${AUTH_IDLE_CONNECTIONS:-15000}" --rate 5000 --hold 10s \
			--sources "$SRC" --gateway-pid "$gw" ${flags//ROUND/1} --json "$OUT/auth-idle-$v.json" >/dev/null 2>>"$tmp/auth-load.log" || true
		stop "$gw"
	done
	stop "$authz"
	# One row per variant and round, then the median of the rounds.
	table() { # variant files...: a row per file, then their median
		local v=$1
		shift
		jq -rs --arg v "$v" '
			def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
			def row($r; $c; $p; $q; $u; $n): "\($v)\t\($r)\t\($c)\t\($p)\t\($q)\t\($u)\t\($n)";
			def num: if . == null then "-" else (. * 10 | round / 10 | tostring) end;
			# gateway CPU microseconds per connect or post: steadier than
			# the rates when the generator shares the cores.
			def us: if .gateway.cpuSeconds == null then null
				elif .post then .gateway.cpuSeconds * 1e6 / .post.posts
				else .gateway.cpuSeconds * 1e6 / .connect.connected end;
			(to_entries[] | .value as $s | row(.key + 1;
				(if $s.post then null else $s.connect.perSecond end | num);
				(if $s.post then null else $s.connect.handshake.p99Ms end | num);
				($s.post.perSecond | num); ($s | us | num); ($s.problems | length))),
			row("median";
				(map(select(.post == null) | .connect.perSecond) | median | num);
				(map(select(.post == null) | .connect.handshake.p99Ms) | median | num);
				(map(.post.perSecond // empty) | median | num); (map(us // empty) | median | num); (map(.problems | length) | add))' "$@"
	}
	{
		printf 'variant\tround\tconnects/s\tp99 handshake ms\tposts/s\tgateway us/op\tproblems\n'
		for v in "${order[@]}"; do
			table "$v" $(for r in $(seq "${REPS:-3}"); do [[ -f $OUT/auth-connect-$v-$r.json ]] && echo "$OUT/auth-connect-$v-$r.json"; done)
		done
		for m in none iam; do
			table "post-$m" $(for r in $(seq "${REPS:-3}"); do [[ -f $OUT/auth-post-$m-$r.json ]] && echo "$OUT/auth-post-$m-$r.json"; done)
		done
	} | column -t -s$'\t' | tee "$OUT/auth-summary.txt"
	for v in none request-cached jwt-cached; do
		[[ -f $OUT/auth-idle-$v.json ]] && jq -r --arg v "$v" '"idle behind \($v): \(.gateway.bytesPerConnection | floor) B per connection (\(.connect.connected) connections dialled at 5,000/s)"' "$OUT/auth-idle-$v.json"
	done | tee -a "$OUT/auth-summary.txt"
	grep -h 'authorizer calls' "$tmp/authorizer.log" | tee -a "$OUT/auth-summary.txt" || true
fi
if [[ $what == broadcast || $what == all ]]; then
	# 10,000 subscribers of one channel (each joins through the subscribe
	# route), on one node (memory registry), then over three nodes sharing
	# port 18080 (reusePort) and one Redis. Per setup: 200 publishes of
	# 100 bytes paced at 10/s (latency to the last subscriber below
	# saturation), then 500 published back to back (deliveries per second).
	# BROADCAST_SUBSCRIBERS=500 makes it a quick check of the script.
	subs=${BROADCAST_SUBSCRIBERS:-10000}
	bcast() { # NAME MGMTPORT PIDS
		"$load" broadcast --url ws://127.0.0.1:18080/dev --management "http://127.0.0.1:$2/dev" --connections "$subs" --rate 5000 \
			--publishes 200 --publish-rate 10 --message-bytes 100 --duration 60s \
			--sources "$SRC" --gateway-pid "$3" --json "$OUT/broadcast-$1-paced.json" >/dev/null
		"$load" broadcast --url ws://127.0.0.1:18080/dev --management "http://127.0.0.1:$2/dev" --connections "$subs" --rate 5000 \
			--publishes 500 --message-bytes 100 --duration 60s \
			--sources "$SRC" --gateway-pid "$3" --json "$OUT/broadcast-$1-flood.json" >/dev/null
	}
	gateway epoll 18080 19090; gw=$GW
	bcast 1node 19090 "$gw"
	stop "$gw"
	redis-server --port 16379 --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
	pids+=($!)
	until redis-cli -p 16379 ping >/dev/null 2>&1; do sleep 0.05; done
	gws=()
	for i in 1 2 3; do gateway epoll 18080 "1909$i" 'listen: {reusePort: true}
storage: {type: redis, redis: {addrs: ["127.0.0.1:16379"]}}'; gws+=("$GW"); done
	bcast 3nodes 19091 "$(IFS=,; echo "${gws[*]}")"
	for g in "${gws[@]}"; do stop "$g"; done
	if command -v jq >/dev/null; then
		for f in "$OUT"/broadcast-*.json; do
			jq -r --arg f "$(basename "$f" .json)" '.broadcast | "\($f): \(.subscribed) subscribers, \(.perSecond|floor) deliveries/s, last delivery p50 \(.lastDelivery.p50Ms) ms p99 \(.lastDelivery.p99Ms) ms, \(.bytesPerSubscription|floor) bytes/subscription, \(.lost) lost"' "$f"
		done | tee "$OUT/broadcast.txt"
	fi
fi
if [[ $what == broadcast100k ]]; then
	# 100,000 subscribers of one channel. One process may hold 20,000 open
	# files here, so neither one gateway nor one generator can hold them:
	# NODES gateways share port 18080 (reusePort) and one Redis, and
	# LISTENERS generator processes hold PER subscribers each, with one
	# more process (PUB subscribers) publishing once the channel lists them
	# all. Paced (10/s: the latency to the last subscriber) and back to
	# back (deliveries per second); 100-byte messages. Not in "all".
	# NODES=2 LISTENERS=2 PER=500 PUB=500 is a quick check of the script.
	nodes=${NODES:-7} listeners=${LISTENERS:-6} per=${PER:-15000} pub=${PUB:-10000}
	total=$((listeners * per + pub))
	redis-server --port 16379 --bind 127.0.0.1 --save '' --appendonly no >/dev/null 2>&1 &
	pids+=($!)
	until redis-cli -p 16379 ping >/dev/null 2>&1; do sleep 0.05; done
	gws=()
	for i in $(seq "$nodes"); do gateway epoll 18080 $((19100 + i)) 'listen: {reusePort: true}
storage: {type: redis, redis: {addrs: ["127.0.0.1:16379"]}}'; gws+=("$GW"); done
	run100k() { # NAME PUBLISHES PUBLISH-RATE
		local ls=()
		for i in $(seq "$listeners"); do
			"$load" broadcast --publish=false --url ws://127.0.0.1:18080/dev --management http://127.0.0.1:19101/dev \
				--connections "$per" --rate 2500 --publishes "$2" --duration 180s \
				--sources "127.0.$((10 + i)).2-127.0.$((10 + i)).6" --json "$OUT/b100k-$1-gen$i.json" >/dev/null &
			ls+=($!)
		done
		"$load" broadcast --url ws://127.0.0.1:18080/dev --management http://127.0.0.1:19101/dev \
			--connections "$pub" --rate 2500 --publishes "$2" --publish-rate "$3" --message-bytes 100 \
			--wait-members "$total" --duration 180s --sources 127.0.10.2-127.0.10.6 \
			--gateway-pid "$(IFS=,; echo "${gws[*]}")" --json "$OUT/b100k-$1-pub.json" >/dev/null
		for l in "${ls[@]}"; do wait "$l" || true; done
		"$load" broadcast-merge "$OUT"/b100k-"$1"-*.json > "$OUT/b100k-$1.txt"
		echo "== $1: $total subscribers over $nodes nodes"; cat "$OUT/b100k-$1.txt"
	}
	run100k paced 200 10
	run100k flood 300 0
	for g in "${gws[@]}"; do stop "$g"; done
fi
if [[ $what == tls || $what == all ]]; then
	# Memory per idle wss:// connection (a TLS WebSocket API is served in
	# goroutine mode) against plain ws:// in epoll and goroutine mode,
	# 5,000 connections each, one after the other.
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
		-addext subjectAltName=IP:127.0.0.1 -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>/dev/null
	for run in epoll goroutine tls; do
		mode=$run scheme=ws API_EXTRA=
		if [[ $run == tls ]]; then
			mode=epoll scheme=wss
			API_EXTRA="    tls: {certFile: $tmp/tls.crt, keyFile: $tmp/tls.key}"
		fi
		API_EXTRA=$API_EXTRA gateway "$mode" 18080 19090; gw=$GW
		"$load" connect --url $scheme://127.0.0.1:18080/dev --tls-ca "$tmp/tls.crt" --connections 5000 --rate 1000 --hold 20s \
			--sources "$SRC" --gateway-pid "$gw" --json "$OUT/idle-tls-$run.json" >/dev/null
		stop "$gw"
	done
	for run in epoll goroutine tls; do
		jq -r --arg r "$run" '"\($r): \(.connect.connected) connected, \(.gateway.bytesPerConnection|floor) B per connection, handshake p99 \(.connect.handshake.p99Ms) ms"' "$OUT/idle-tls-$run.json"
	done | tee "$OUT/idle-tls.txt"
fi
# httpgw ROUTES [STAGE_EXTRA]: start a gateway with one HTTP API on
# 127.0.0.1:18081, stage $default (served at the root), whose routes are
# ROUTES (indented by six); STAGE_EXTRA are keys of the stage (indented by
# eight). Its pid is left in $GW. HTTP_PORT and HTTP_MGMT_PORT move the
# listeners.
hport=${HTTP_PORT:-18081} hmgmt=${HTTP_MGMT_PORT:-19090}
httpgw() {
	cat > "$tmp/gw-http.yaml" <<YAML
management: {address: 127.0.0.1:$hmgmt, pprof: true}
apis:
  - name: bench
    protocol: http
    listen: 127.0.0.1:$hport
    stages:
      - name: \$default
${2:-}
    routes:
$1
YAML
	${GW_PREFIX:-} "$tmp/portico" --config "$tmp/gw-http.yaml" >/dev/null 2>"$tmp/gw-http.log" &
	GW=$!
	pids+=("$GW")
	for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$hmgmt/readyz" && break; sleep 0.1; done
}
if [[ $what == proxy || $what == all ]]; then
	# The same keep-alive load (64 clients, closed loop, then open loop at
	# half of Portico's saturation) against a trivial backend alone, a bare
	# httputil.ReverseProxy in front of it, and an HTTP API whose
	# http_proxy integration forwards to it; each is its own process.
	# proxy-compare.json: ratioToSecond.portico (goal >= 0.8) and
	# addedP99MsAtHalf.portico (goal <= 1 ms): the median over
	# PROXY_ROUNDS (default 5) half-rate rounds, the three targets
	# interleaved, each against the backend's p99 in its own round
	# (addedP99MsAtHalfRounds lists them), so the machine's drift between
	# phases does not land on one side.
	#
	# PIN=1 separates the proxies from the load: both proxies on CPU 1
	# (one at a time carries traffic), the generator and the backend on
	# CPU 0 (taskset; Go sizes GOMAXPROCS to the CPUs it may use). On a
	# two-core machine this is the nearest to a generator on its own
	# machine: unpinned, every process's tail includes waiting for a core
	# the others hold. Results go to proxy-compare-pinned.json.
	cpu_proxy=() cpu_load=() result=proxy-compare.json
	if [[ ${PIN:-} == 1 ]]; then
		cpu_proxy=(taskset -c 1) cpu_load=(taskset -c 0) result=proxy-compare-pinned.json
	fi
	"${cpu_load[@]}" "$load" http-backend --listen 127.0.0.1:18100 >/dev/null 2>&1 &
	be=$!
	pids+=("$be")
	"${cpu_proxy[@]}" "$load" reverse-proxy --listen 127.0.0.1:18101 --target http://127.0.0.1:18100 >/dev/null 2>&1 &
	rp=$!
	pids+=("$rp")
	GW_PREFIX="${cpu_proxy[*]}" httpgw '      ANY /{proxy+}:
        integration: {type: http_proxy, uri: "http://127.0.0.1:18100/{proxy}"}'
	gw=$GW
	"${cpu_load[@]}" "$load" http-load --target backend=http://127.0.0.1:18100/x --target reverse-proxy=http://127.0.0.1:18101/x \
		--target portico=http://127.0.0.1:$hport/x --clients 64 --duration "${HTTP_LOAD_DURATION:-10s}" \
		--half-rounds "${PROXY_ROUNDS:-5}" --json "$OUT/$result" >/dev/null
	stop "$gw"
	stop "$rp"
	stop "$be"
fi
if [[ $what == throttle || $what == all ]]; then
	# A route throttled at THROTTLE_RATE requests/s (burst a tenth of it),
	# hammered by 32 keep-alive clients for 10 s: status.200 should be
	# the rate times the duration plus the burst (throttle.json), and
	# byStatus.429 how fast the refusals come (throttle-5x.json).
	rate=${THROTTLE_RATE:-1000}
	httpgw '      GET /limited:
        integration: {type: mock, response: {body: ok}}' "        routeSettings:
          GET /limited: {throttlingRateLimit: $rate, throttlingBurstLimit: $((rate / 10))}"
	gw=$GW
	"$load" http-load --target throttled=http://127.0.0.1:$hport/limited --clients 32 --duration "${HTTP_LOAD_DURATION:-10s}" \
		--json "$OUT/throttle.json" >/dev/null
	# Then at five times the rate, open loop, below what the machine can
	# answer: the 429s' latency without queueing in front of them.
	"$load" http-load --target throttled=http://127.0.0.1:$hport/limited --clients 32 --rate $((rate * 5)) \
		--duration "${HTTP_LOAD_DURATION:-10s}" --json "$OUT/throttle-5x.json" >/dev/null
	stop "$gw"
fi
if [[ $what == compare ]]; then
	# Portico (epoll, the mock echo route) against the plain
	# goroutine-per-connection gorilla server (portico-load plain-echo),
	# side by side: REPS rounds, each running both with identical
	# generator flags on a fresh process, in alternating order so that
	# the machine's drift hits both alike. Per connection count: messages
	# per second of each, the ratio, and each server's CPU per message
	# over the message window (utime + stime from /proc/PID/stat, the
	# connects before the window left out). Then, on Portico alone:
	# connect rate and handshake p99 at concurrency 512, and idle memory
	# per connection, dialled paced and in bursts.
	#   COMPARE          parts to run (default "echo connect idle post")
	#   COMPARE_CONNS    echo connection counts (default "200 2000 10000")
	#   ECHO_DURATION    each echo window (default 10s)
	#   IDLE_CONNECTIONS connections held idle (default 15000)
	#   IDLE_BURSTS      concurrent handshakes of the bursty dials (default "200 512")
	reps=${REPS:-3}
	parts=${COMPARE:-echo connect idle post}
	: >"$OUT/compare.txt"
	say() { echo "$*" | tee -a "$OUT/compare.txt"; }
	command -v jq >/dev/null || { echo "compare: jq is needed to read the results"; exit 1; }
	plain() { # PORT: start the plain server; its pid is left in $GW
		"$load" plain-echo --listen "127.0.0.1:$1" --duration 30m >/dev/null 2>"$tmp/plain-$1.log" &
		GW=$!
		pids+=("$GW")
		for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$1/" && break; sleep 0.1; done
	}
	median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
	if [[ " $parts " == *" echo "* ]]; then
		for n in ${COMPARE_CONNS:-200 2000 10000}; do
			for r in $(seq "$reps"); do
				order=(portico plain)
				((r % 2 == 0)) && order=(plain portico)
				for side in "${order[@]}"; do
					if [[ $side == portico ]]; then
						gateway epoll 18080 19090; url=ws://127.0.0.1:18080/dev
					else
						plain 18090; url=ws://127.0.0.1:18090/
					fi
					srv=$GW
					"$load" echo --url "$url" --expect auto --connections "$n" --rate 5000 --duration "${ECHO_DURATION:-10s}" \
						--sources "$SRC" --gateway-pid "$srv" --quiet --json "$OUT/compare-echo-$n-$side-$r.json" >/dev/null 2>>"$tmp/compare.log" || true
					stop "$srv"
				done
				p=$OUT/compare-echo-$n-portico-$r.json q=$OUT/compare-echo-$n-plain-$r.json
				say "$(jq -rn --slurpfile p "$p" --slurpfile q "$q" --arg n "$n" --arg r "$r" '
					($p[0].messages) as $a | ($q[0].messages) as $b |
					"echo \($n) conns, round \($r): portico \($a.perSecond|floor)/s \($a.serverCpuPerMessageUs // 0 | . * 100 | round / 100) µs CPU/msg, plain \($b.perSecond|floor)/s \($b.serverCpuPerMessageUs // 0 | . * 100 | round / 100) µs CPU/msg, ratio \(if $b.perSecond > 0 then ($a.perSecond / $b.perSecond * 100 | round / 100) else "-" end), problems \(($p[0].problems + $q[0].problems) | length)"')"
			done
			ratios=$(for r in $(seq "$reps"); do
				jq -rn --slurpfile p "$OUT/compare-echo-$n-portico-$r.json" --slurpfile q "$OUT/compare-echo-$n-plain-$r.json" \
					'if $q[0].messages.perSecond > 0 then $p[0].messages.perSecond / $q[0].messages.perSecond else empty end'
			done)
			say "echo $n conns: median ratio $(median <<<"$ratios" | xargs printf '%.2f'), range $(sort -g <<<"$ratios" | head -1 | xargs printf '%.2f')-$(sort -g <<<"$ratios" | tail -1 | xargs printf '%.2f') over $reps rounds"
		done
	fi
	if [[ " $parts " == *" connect "* ]]; then
		for r in $(seq "$reps"); do
			gateway epoll 18080 19090; gw=$GW
			"$load" connect --url ws://127.0.0.1:18080/dev --connections 19000 --rate 0 --concurrency 512 --hold 1s \
				--sources "$SRC" --gateway-pid "$gw" --quiet --json "$OUT/compare-connect-$r.json" >/dev/null 2>>"$tmp/compare.log" || true
			stop "$gw"
			say "$(jq -r --arg r "$r" '"connect at concurrency 512, round \($r): \(.connect.perSecond|floor) connects/s, handshake p50 \(.connect.handshake.p50Ms) ms p99 \(.connect.handshake.p99Ms) ms, problems \(.problems|length)"' "$OUT/compare-connect-$r.json")"
		done
	fi
	if [[ " $parts " == *" idle "* ]]; then
		conns=${IDLE_CONNECTIONS:-15000}
		for r in $(seq "$reps"); do
			for dial in paced ${IDLE_BURSTS:-200 512}; do
				if [[ $dial == paced ]]; then flags=(--rate 5000); else flags=(--rate 0 --concurrency "$dial"); fi
				gateway epoll 18080 19090; gw=$GW
				"$load" connect --url ws://127.0.0.1:18080/dev --connections "$conns" "${flags[@]}" --hold 20s \
					--sources "$SRC" --gateway-pid "$gw" --quiet --json "$OUT/compare-idle-$dial-$r.json" >/dev/null 2>>"$tmp/compare.log" || true
				stop "$gw"
				say "$(jq -r --arg r "$r" --arg d "$dial" '"idle \(.connect.connected) conns dialled \(if $d == "paced" then "at 5,000/s" else "\($d) at a time" end), round \($r): \(.gateway.bytesPerConnection|floor) B per connection (RSS), problems \(.problems|length)"' "$OUT/compare-idle-$dial-$r.json")"
			done
		done
	fi
	if [[ " $parts " == *" post "* ]]; then
		# @connections POST: 64 keep-alive clients over 1,000 connections,
		# delivery timed to the socket.
		for r in $(seq "$reps"); do
			gateway epoll 18080 19090; gw=$GW
			"$load" post --url ws://127.0.0.1:18080/dev --management http://127.0.0.1:19090/dev --connections 1000 \
				--clients 64 --duration 10s --gateway-pid "$gw" --quiet --json "$OUT/compare-post-$r.json" >/dev/null 2>>"$tmp/compare.log" || true
			stop "$gw"
			say "$(jq -r --arg r "$r" '"post, 64 clients over 1,000 connections, round \($r): \(.post.perSecond // .messages.perSecond | floor) posts/s, delivery p50 \(.post.delivery.p50Ms // .delivery.p50Ms) ms p99 \(.post.delivery.p99Ms // .delivery.p99Ms) ms, problems \(.problems|length)"' "$OUT/compare-post-$r.json")"
		done
	fi
	echo "summary in $OUT/compare.txt"
fi
if [[ $what == observability ]]; then
	# The cost of access logs (a JSON line per event to a file), of
	# tracing and of the AWS-named metrics, which are always on: echo over
	# 10,000 connections, closed loop, REPS rounds, each running the sides
	# in turn (the order rotating per round), then idle memory per
	# connection per side. Not in "all".
	#   OBS_SIDES    sides to run (default "off on traced"): off = metrics
	#                only, on = metrics + access logs, traced = metrics +
	#                access logs + tracing to a local OTLP sink
	#   TRACE_RATIO  tracing's sampleRatio on the traced side (default 1)
	reps=${REPS:-3}
	read -r -a sides <<<"${OBS_SIDES:-off on traced}"
	traced=
	if [[ " ${sides[*]} " == *" traced "* ]]; then
		"$load" otlp-sink --listen 127.0.0.1:18318 --duration 30m >/dev/null 2>"$tmp/otlp-sink.log" &
		sink=$!
		pids+=("$sink")
		traced="tracing: {endpoint: 'http://127.0.0.1:18318', sampleRatio: ${TRACE_RATIO:-1}}"
	fi
	label() { case $1 in off) echo "access logs off" ;; on) echo "access logs on" ;; *) echo "access logs + tracing (ratio ${TRACE_RATIO:-1}) on" ;; esac; }
	obsgw() { # SIDE LOGFILE: start the gateway of one side; its pid is left in $GW
		local extra= top=
		[[ $1 != off ]] && extra="        accessLogSettings: {destination: $2, format: '$fmt'}"
		[[ $1 == traced ]] && top=$traced
		STAGE_EXTRA=$extra gateway epoll 18080 19090 "$top"
	}
	fmt='{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","requestTime":"$context.requestTime","eventType":"$context.eventType","routeKey":"$context.routeKey","status":"$context.status","connectionId":"$context.connectionId","integrationLatency":"$context.integrationLatency","responseLatency":"$context.responseLatency"}'
	for r in $(seq "$reps"); do
		k=$(((r - 1) % ${#sides[@]}))
		order=("${sides[@]:k}" "${sides[@]:0:k}")
		for side in "${order[@]}"; do
			obsgw "$side" "$tmp/access-$r.log"; gw=$GW
			"$load" echo --url ws://127.0.0.1:18080/dev --connections 10000 --rate 5000 --duration 10s \
				--sources "$SRC" --gateway-pid "$gw" --quiet --json "$OUT/obs-echo-$side-$r.json" >/dev/null 2>&1 || true
			stop "$gw"
			jq -r --arg s "$(label "$side")" --arg r "$r" '"echo 10,000 conns, \($s), round \($r): \(.messages.perSecond|floor) msg/s, \(.messages.serverCpuPerMessageUs // 0 | . * 100 | round / 100) µs CPU/msg"' "$OUT/obs-echo-$side-$r.json" | tee -a "$OUT/observability.txt"
		done
		rm -f "$tmp/access-$r.log"
	done
	for side in "${sides[@]}"; do
		obsgw "$side" "$tmp/access-idle.log"; gw=$GW
		"$load" connect --url ws://127.0.0.1:18080/dev --connections 15000 --rate 5000 --hold 20s \
			--sources "$SRC" --gateway-pid "$gw" --quiet --json "$OUT/obs-idle-$side.json" >/dev/null 2>&1 || true
		stop "$gw"
		jq -r --arg s "$(label "$side")" '"idle 15,000 conns, \($s): \(.gateway.bytesPerConnection|floor) B per connection"' "$OUT/obs-idle-$side.json" | tee -a "$OUT/observability.txt"
	done
fi
echo "results in $OUT"
