#!/usr/bin/env bash
# Many connections on one machine: NODES gateway processes share one port
# (listen.reusePort) and one Redis registry. NODES-1 generator processes
# hold PER connections each from their own source addresses. Once they
# are all open, one more generator opens PER connections and posts to
# each of them in turn through node 1's @connections for HOLD, so most
# posts cross nodes. Every process here holds at most 20,000 open files,
# hence the many processes.
#
#   NODES=11 PER=18000 HOLD=60 bash loadtest/scale.sh      # 198,000
#   NODES=56 PER=17858 HOLD=60 bash loadtest/scale.sh      # 1,000,048
#
# Bounded: the ramp stops after RAMP_MAX seconds, the generators after 10
# minutes of holding, and the whole run is stopped (every process it
# started) when MemAvailable falls under MIN_FREE_MB. Results go to
# $OUT/scale-summary.txt, the generators' JSON files and $OUT/logs (every
# process's log; the summary counts the gateways' warnings). The exit
# status is 0 only when every connection was held, every post delivered
# and every connection closed cleanly at the end; CI runs it at NODES=3
# PER=100.
set -euo pipefail
cd "$(dirname "$0")/.."
NODES=${NODES:-11}
PER=${PER:-18000}
HOLD=${HOLD:-60}           # seconds every connection is held while posts run
HOLD=${HOLD%s}
RATE=${RATE:-200}          # connects/s asked of each generator (the machine sets the real rate)
CONCURRENCY=${CONCURRENCY:-16}
RAMP_MAX=${RAMP_MAX:-1500} # seconds (the generators allow at most 30 minutes)
# Every process gets one P: with ~100 Go processes on two cores, idle
# spinning threads cost more than a second P gains.
export GOMAXPROCS=${GOMAXPROCS:-1}
MIN_FREE_MB=${MIN_FREE_MB:-1500}
POST_EXTRA=${POST_EXTRA:-120} # seconds the post generator goes on after the hold
# Seconds each connect generator waits for the gateways to answer its close
# frames at the end. All of them close at once: at 1,000,000 connections
# the generator's default of 3 s left 568,118 closes unanswered.
CLOSE_DRAIN=${CLOSE_DRAIN:-60}
OUT=${OUT:-$PWD/bench-results}
mkdir -p "$OUT"
KEEP_LOGS=$OUT/logs
. loadtest/lib.sh
slab() { awk '/^Slab:/ {print $2}' /proc/meminfo; }
avail() { awk '/^MemAvailable:/ {print int($2/1024)}' /proc/meminfo; }
rss() { awk '/^VmRSS:/ {s+=$2} END {print s}' $(for p in "$@"; do echo "/proc/$p/status"; done); }
guard() {
	if [ "$(avail)" -lt "$MIN_FREE_MB" ]; then
		echo "stopping: MemAvailable $(avail) MiB < MIN_FREE_MB $MIN_FREE_MB" | tee -a "$OUT/scale-summary.txt"
		exit 1
	fi
}
# metric NAME: the sum over every node of the samples of NAME.
metric() {
	local sum=0 n
	for i in $(seq 1 "$NODES"); do
		n=$(curl -s "http://127.0.0.1:$((29100 + i))/metrics" | awk -v m="$1" '{n = $1; sub(/\{.*/, "", n)} n == m {s += $2} END {printf "%d", s}')
		sum=$((sum + ${n:-0}))
	done
	echo "$sum"
}
# wait_open N PID...: until N connections are open, RAMP_MAX has passed
# since the start, or memory runs short; fails when every PID has exited.
wait_open() {
	local want=$1
	shift
	while held=$(metric portico_connections_open); [ "$held" -lt "$want" ] && [ $(($(date +%s) - start)) -lt "$RAMP_MAX" ]; do
		guard
		local alive=0
		for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
		if [ "$alive" = 0 ]; then
			echo "stopping: the generators exited with $held connections open" | tee -a "$OUT/scale-summary.txt"
			cat "$tmp"/gen*.log "$tmp"/post.log 2>/dev/null | sort | uniq -c | head
			exit 1
		fi
		sleep 2
	done
}
: >"$OUT/scale-summary.txt"
avail0=$(avail)

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
throttling: {rateLimit: 1000000000, burstLimit: 1000000000}
apis:
  - name: scale
    listen: 127.0.0.1:28080
    stages: [{name: dev}]
    limits: {idleTimeout: 2h}   # the ramp alone outlasts the 10-minute default
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

start=$(date +%s)
gens=()
for i in $(seq 1 $((NODES - 1))); do
	"$load" connect --url ws://127.0.0.1:28080/dev --connections "$PER" --rate "$RATE" \
		--concurrency "$CONCURRENCY" --ramp-timeout "${RAMP_MAX}s" --hold 10m --drain "${CLOSE_DRAIN}s" \
		--sources "127.1.$i.2-127.1.$i.5" --json "$OUT/scale-gen$i.json" --quiet >/dev/null 2>"$tmp/gen$i.log" &
	gens+=($!)
	pids+=($!)
done
wait_open $(((NODES - 1) * PER)) "${gens[@]}"
echo "ramp: $held connections open after $(($(date +%s) - start)) s" | tee -a "$OUT/scale-summary.txt"

# The post generator: its connections open at the machine's rate, then
# it learns their ids and posts to each in turn for HOLD + POST_EXTRA
# seconds, so that it still holds its connections when the hold is
# measured.
"$load" post --url ws://127.0.0.1:28080/dev --management "http://127.0.0.1:29101/dev" \
	--connections "$PER" --rate 0 --concurrency 64 --clients 32 --duration "$((HOLD + POST_EXTRA))s" --ramp-timeout 5m \
	--sources 127.1.99.2-127.1.99.5 --json "$OUT/scale-post.json" --quiet >/dev/null 2>"$tmp/post.log" &
post=$!
pids+=($post)
wait_open $((NODES * PER)) "$post"
full=$(date +%s)
echo "all open: $held connections after $((full - start)) s" | tee -a "$OUT/scale-summary.txt"
disc0=$(metric portico_disconnects_total)
gwrss1=$(rss "${gws[@]}")
genrss=$(rss "${gens[@]}" "$post")
redisrss=$(rss "$redis")
slab1=$(slab)
avail1=$(avail)
records=$(redis-cli -p 26379 dbsize)
redismem=$(redis-cli -p 26379 info memory | awk -F: '/^used_memory:/ {print int($2/1048576)}')
{
	echo "date: $(date -u +%FT%TZ)  machine: $(nproc) cores, $(awk '/MemTotal/ {print int($2/1048576)}' /proc/meminfo) GiB, kernel $(uname -r)"
	echo "nodes: $NODES gateway processes on 127.0.0.1:28080 (reusePort), $NODES generator processes x $PER connections"
	echo "connections held (sum of portico_connections_open): $held"
	echo "redis keys: $records (used_memory $redismem MiB)"
	echo "gateway RSS: $((gwrss0 / 1024)) MiB -> $((gwrss1 / 1024)) MiB, $(((gwrss1 - gwrss0) * 1024 / (held > 0 ? held : 1))) bytes/connection"
	echo "generator RSS: $((genrss / 1024)) MiB, $((genrss * 1024 / (held > 0 ? held : 1))) bytes/connection"
	echo "redis RSS: $((redisrss / 1024)) MiB"
	echo "kernel slab: $((slab0 / 1024)) MiB -> $((slab1 / 1024)) MiB, $(((slab1 - slab0) * 1024 / (held > 0 ? held : 1))) bytes/connection pair"
	echo "MemAvailable: $avail0 MiB -> $avail1 MiB"
} | tee -a "$OUT/scale-summary.txt"

# Hold: every connection stays open for HOLD while the posts run.
left=$((full + HOLD - $(date +%s)))
if [ "$left" -gt 0 ]; then sleep "$left"; fi
held2=$(metric portico_connections_open)
disc1=$(metric portico_disconnects_total)
echo "held: $held2 connections open $(($(date +%s) - full)) s after all were open; $((disc1 - disc0)) disconnects in between" | tee -a "$OUT/scale-summary.txt"
wait "$post" || true
relayed=$(curl -s http://127.0.0.1:29101/metrics | awk '/^portico_relayed_requests_total\{code="200",op="post"\}/ {print $2}')
{
	echo "posts through node 1: ${relayed:-0} answered 200 by another node (cross-node)"
	grep -E "^(posts|  delivered|  HTTP|post HTTP|delivery|  not delivered|problem)" "$tmp/post.log" || tail -n 15 "$tmp/post.log"
} | tee -a "$OUT/scale-summary.txt"

# Stop the connect generators; each writes its summary on the way out.
for g in "${gens[@]}"; do kill -TERM "$g" 2>/dev/null || true; done
for g in "${gens[@]}"; do wait "$g" || true; done
grep -h "^connected" "$tmp"/gen*.log | sort | uniq -c | tee -a "$OUT/scale-summary.txt" || true
# jsum FIELD: FIELD ("serverClosed": 0,) summed over the connect generators' summaries.
jsum() { cat "$OUT"/scale-gen*.json | awk -v f="\"$1\":" '$1 == f {gsub(/,/, "", $2); s += $2} END {printf "%d", s}'; }
closes="$(jsum cleanClosed) clean, $(jsum forcedClosed) forced (no close answer in time), $(jsum serverClosed) closed by a gateway, $(jsum dropped) dropped, $(jsum protocolErrors) protocol errors"
echo "connect generators at teardown: $closes" | tee -a "$OUT/scale-summary.txt"
# The gateways' warnings and errors (lease renewals retried, Redis
# outages), most frequent first.
for level in WARN ERROR; do
	n=$(cat "$tmp"/node*.log | grep -c "level=$level" || true)
	echo "gateway log: $n $level lines" | tee -a "$OUT/scale-summary.txt"
	cat "$tmp"/node*.log | sed -n "s/.*level=$level \(msg=\"[^\"]*\"\).*/\1/p" | sort | uniq -c | sort -rn | head -5 |
		tee -a "$OUT/scale-summary.txt" || true
done
# Stop the gateways while Redis still runs: each closes what it holds and
# empties its registry queue (30 s at most).
t0=$(date +%s)
for g in "${gws[@]}"; do kill -TERM "$g" 2>/dev/null || true; done
for g in "${gws[@]}"; do wait "$g" || true; done
echo "gateways stopped in $(($(date +%s) - t0)) s" | tee -a "$OUT/scale-summary.txt"

# Exit status: 0 only when every connection was held through the hold,
# every post was answered 200 and delivered, to each of the PER
# connections, and every connection closed cleanly at the end (the
# gateways answered each generator's close frame in time).
ok=1
[ "$held2" -ge $((NODES * PER)) ] && [ "$((disc1 - disc0))" -eq 0 ] || ok=0
[ "$(jsum cleanClosed)" -eq $(((NODES - 1) * PER)) ] || ok=0
grep -q '"lost": 0,' "$OUT/scale-post.json" && grep -q "\"reached\": $PER," "$OUT/scale-post.json" || ok=0
grep -q '"problems": \[\]' "$OUT/scale-post.json" || ok=0
if [ "$ok" = 1 ]; then echo "scale: ok" | tee -a "$OUT/scale-summary.txt"; else echo "scale: FAILED" | tee -a "$OUT/scale-summary.txt"; exit 1; fi
