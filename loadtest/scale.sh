#!/usr/bin/env bash
# Many connections on one machine: NODES gateway processes share one port
# (listen.reusePort) and one Redis registry; NODES-1 generator processes
# hold PER connections each from their own source addresses, and one more
# generator holds PER connections and posts to them through node 1's
# @connections (so most posts cross nodes). Every process holds at most
# 20,000 open files here, hence the many processes.
#
#   NODES=11 PER=18000 HOLD=60s bash loadtest/scale.sh
#
# The headline target (1,000,000 connections) is NODES=56 PER=18000; it
# needs ~10 GB of kernel socket memory. Bounded: each generator stops
# after its hold; every process started is stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-11}
PER=${PER:-18000}
HOLD=${HOLD:-60s}
RATE=${RATE:-500}
OUT=${OUT:-$PWD/bench-results}
mkdir -p "$OUT"
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
slab() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
rss() { awk '/^VmRSS:/ {s+=$2} END {print s}' $(for p in "$@"; do echo "/proc/$p/status"; done); }

redis-server --port 26379 --bind 127.0.0.1 --save '' --appendonly no >"$tmp/redis.log" 2>&1 &
redis=$!
pids+=("$redis")
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/26379) 2>/dev/null && break; sleep 0.1; done
slab0=$(slab)

gws=()
for i in $(seq 1 "$NODES"); do
	cat >"$tmp/node$i.yaml" <<YAML
management: {address: 127.0.0.1:$((29100 + i))}
listen: {reusePort: true}
storage: {type: redis, redis: {addrs: ["127.0.0.1:26379"]}}
apis:
  - name: scale
    listen: 127.0.0.1:28080
    stages: [{name: dev}]
    routes:
      whoami:
        routeResponse: true
        integration: {type: mock, response: {body: '{"connectionId":"\$context.connectionId"}'}}
YAML
	"$tmp/portico" --config "$tmp/node$i.yaml" >/dev/null 2>"$tmp/node$i.log" &
	gws+=($!)
	pids+=($!)
done
for i in $(seq 1 "$NODES"); do
	for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$((29100 + i))") 2>/dev/null && break; sleep 0.1; done
done
gwrss0=$(rss "${gws[@]}")
gpids=$(IFS=,; echo "${gws[*]}")

gens=()
for i in $(seq 1 $((NODES - 1))); do
	"$tmp/portico-load" connect --url ws://127.0.0.1:28080/dev --connections "$PER" --rate "$RATE" --hold "$HOLD" \
		--sources "127.1.$i.2-127.1.$i.5" --json "$OUT/scale-gen$i.json" --quiet >/dev/null 2>"$tmp/gen$i.log" &
	gens+=($!)
	pids+=($!)
done
"$tmp/portico-load" post --url ws://127.0.0.1:28080/dev --management "http://127.0.0.1:29101/dev" \
	--connections "$PER" --rate "$RATE" --clients 32 --duration 40s --sources 127.1.99.2-127.1.99.5 \
	--json "$OUT/scale-post.json" --quiet >/dev/null 2>"$tmp/post.log" &
post=$!
pids+=($post)

# Measure while everything is held: once every connection is open (or
# after 5 minutes), before the holds end.
count() {
	local sum=0 n
	for i in $(seq 1 "$NODES"); do
		n=$(curl -s "http://127.0.0.1:$((29100 + i))/metrics" | awk '/^portico_connections_open\{/ {print $2}')
		sum=$((sum + ${n:-0}))
	done
	echo "$sum"
}
start=$(date +%s)
while held=$(count); [ "$held" -lt $((NODES * PER)) ] && [ $(($(date +%s) - start)) -lt 300 ]; do
	sleep 2
done
echo "ramp: $held connections open after $(($(date +%s) - start)) s" | tee "$OUT/scale-ramp.txt"
gwrss1=$(rss "${gws[@]}")
genrss=$(rss "${gens[@]}" "$post")
redisrss=$(rss "$redis")
slab1=$(slab)
records=$(redis-cli -p 26379 dbsize)
{
	echo "date: $(date -u +%FT%TZ)  machine: $(nproc) cores, $(awk '/MemTotal/ {print int($2/1048576)}' /proc/meminfo) GiB"
	echo "nodes: $NODES gateway processes on 127.0.0.1:28080 (reusePort), $NODES generator processes x $PER connections"
	echo "connections held (sum of portico_connections_open): $held"
	echo "redis keys: $records"
	echo "gateway RSS: $((gwrss0 / 1024)) MiB -> $((gwrss1 / 1024)) MiB, $(( (gwrss1 - gwrss0) * 1024 / (held > 0 ? held : 1) )) bytes/connection"
	echo "generator RSS: $((genrss / 1024)) MiB"
	echo "redis RSS: $((redisrss / 1024)) MiB"
	echo "kernel slab: $((slab0 / 1024)) MiB -> $((slab1 / 1024)) MiB"
} | tee -a "$OUT/scale-ramp.txt"
mv "$OUT/scale-ramp.txt" "$OUT/scale-summary.txt"
wait "$post" || true
echo "post through node 1 (most connections are on other nodes):" | tee -a "$OUT/scale-summary.txt"
tail -n 12 "$tmp/post.log" | tee -a "$OUT/scale-summary.txt"
for g in "${gens[@]}"; do wait "$g" || true; done
grep -h "connected" "$tmp"/gen*.log | tee -a "$OUT/scale-summary.txt"
