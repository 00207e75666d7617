# Shared start of bench.sh, scale.sh and smoke.sh; source it from the
# repository root. It makes a temporary folder ($tmp), builds the gateway
# ($tmp/portico; PORTICO_BIN, when set, is copied there instead: another
# build to compare, driven by this tree's generator) and the generator
# ($load) into it, and at exit (also on
# Ctrl-C or SIGTERM) stops every process whose pid the script added to
# $pids, copies $tmp/*.log to $KEEP_LOGS when that is set, and removes
# $tmp.
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ -n "${KEEP_LOGS:-}" ]; then
		mkdir -p "$KEEP_LOGS" && cp "$tmp"/*.log "$KEEP_LOGS/" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${PORTICO_BIN:-}" ]; then
	cp "$PORTICO_BIN" "$tmp/portico"
else
	go build -o "$tmp/portico" ./cmd/portico
fi
go build -o "$tmp/portico-load" ./cmd/portico-load
load="$tmp/portico-load"
