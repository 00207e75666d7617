#!/usr/bin/env bash
# Compares two revisions of the gateway back to back on this machine:
# idle memory per connection, connect rate, closed-loop echo and
# @connections throughput, all in epoll mode, driven by the same
# generator (built from the work tree) with the same flags, in REPS
# alternating rounds so that the machine's drift hits both sides.
#
#   bash loadtest/revs.sh OLD NEW        # e.g. 11d8756 HEAD
#   REPS=3 bash loadtest/revs.sh main~5 main
#   WHAT="connect echo" REPS=5 bash loadtest/revs.sh OLD NEW   # some of them
#
# Each revision is built from a temporary git worktree. Results (JSON
# summaries) go to $OUT (default ./bench-results/revs); the table at the
# end gives each figure per round and revision. Loopback only, bounded in
# connections and time (about a minute per revision and round).
set -euo pipefail
cd "$(dirname "$0")/.."
old=${1:?usage: revs.sh OLD NEW}
new=${2:?usage: revs.sh OLD NEW}
REPS=${REPS:-3}
WHAT=${WHAT:-idle connect echo post}
has() { [[ " $WHAT " == *" $1 "* ]]; }
OUT=${OUT:-$PWD/bench-results/revs}
mkdir -p "$OUT"
. loadtest/lib.sh
SRC=127.0.0.2-127.0.0.9

# build REV NAME: the gateway of REV as $tmp/portico-NAME.
build() {
	local wt="$tmp/wt-$2"
	git worktree add -q --detach "$wt" "$1"
	(cd "$wt" && go build -o "$tmp/portico-$2" ./cmd/portico)
	git worktree remove --force "$wt"
	echo "$2 = $(git rev-parse --short "$1")" | tee -a "$OUT/revs.txt"
}
: >"$OUT/revs.txt"
build "$old" old
build "$new" new

cat >"$tmp/gw.yaml" <<'YAML'
management: {address: 127.0.0.1:19090}
connections: {mode: epoll}
apis:
  - name: bench
    listen: 127.0.0.1:18080
    stages: [{name: dev}]
    routes:
      $connect:
        integration: {type: mock}
      echo:
        routeResponse: true
        integration: {type: mock, response: {body: $request.body.data}}
      whoami:
        routeResponse: true
        integration: {type: mock, response: {body: '{"connectionId":"$context.connectionId"}'}}
YAML

start() {
	"$tmp/portico-$1" --config "$tmp/gw.yaml" >/dev/null 2>"$tmp/gw-$1.log" &
	GW=$!
	pids+=("$GW")
	for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:19090/readyz && break; sleep 0.1; done
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

for rep in $(seq "$REPS"); do
	for side in old new; do
		j="$OUT/$side-$rep"
		if has idle; then
			start "$side"
			"$load" connect --url ws://127.0.0.1:18080/dev --connections 15000 --rate 5000 --hold 20s \
				--sources "$SRC" --gateway-pid "$GW" --json "$j-idle.json" >/dev/null
			stop "$GW"
		fi
		if has connect; then
			start "$side"
			"$load" connect --url ws://127.0.0.1:18080/dev --connections 19000 --concurrency 512 --hold 1s \
				--sources "$SRC" --gateway-pid "$GW" --json "$j-connect.json" >/dev/null
			stop "$GW"
		fi
		if has echo; then
			start "$side"
			"$load" echo --url ws://127.0.0.1:18080/dev --connections 10000 --rate 5000 --duration 10s \
				--sources "$SRC" --gateway-pid "$GW" --json "$j-echo.json" >/dev/null
			stop "$GW"
		fi
		if has post; then
			start "$side"
			"$load" post --url ws://127.0.0.1:18080/dev --management http://127.0.0.1:19090/dev --connections 1000 \
				--clients 64 --duration 10s --gateway-pid "$GW" --json "$j-post.json" >/dev/null
			stop "$GW"
		fi
	done
done

# fig FILE PATH: the figure, rounded, or "-" when that run was not made.
fig() { if [[ -f $1 ]]; then jq -r "$2 | round" "$1"; else echo -; fi; }

# The table: one row per round and revision.
{
	printf '%-4s %-4s %14s %14s %14s %14s\n' round rev 'idle B/conn' 'connects/s' 'echo msg/s' 'posts/s'
	for rep in $(seq "$REPS"); do
		for side in old new; do
			j="$OUT/$side-$rep"
			printf '%-4s %-4s %14s %14s %14s %14s\n' "$rep" "$side" \
				"$(fig "$j-idle.json" .gateway.bytesPerConnection)" \
				"$(fig "$j-connect.json" .connect.perSecond)" \
				"$(fig "$j-echo.json" .messages.perSecond)" \
				"$(fig "$j-post.json" .post.perSecond)"
		done
	done
} | tee "$OUT/table.txt"
