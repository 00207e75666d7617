package gateway

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/portico-gateway/portico/storage/storagetest"
)

// redisCLI runs redis-cli against addr and returns its output.
func redisCLI(t *testing.T, addr string, args ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	out, err := exec.Command("redis-cli", append([]string{"-h", host, "-p", port}, args...)...).CombinedOutput()
	if err != nil || strings.HasPrefix(string(out), "ERR") {
		t.Fatalf("redis-cli %s %v: %v %s", addr, args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// moveSlot moves the slot of key to another master of the cluster, keys
// and all, as redis-cli --cluster reshard does, and returns the old and
// the new owner's addresses.
func moveSlot(t *testing.T, addrs []string, key string) (from, to string) {
	t.Helper()
	slot := redisCLI(t, addrs[0], "CLUSTER", "KEYSLOT", key)
	ids := map[string]string{} // address → node id
	var owner string
	for _, line := range strings.Split(redisCLI(t, addrs[0], "CLUSTER", "NODES"), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		ids[addr] = f[0]
		for _, r := range f[8:] {
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			var l, h, s int
			fmt.Sscan(lo, &l)
			fmt.Sscan(hi, &h)
			fmt.Sscan(slot, &s)
			if s >= l && s <= h {
				owner = addr
			}
		}
	}
	if owner == "" {
		t.Fatalf("no owner of slot %s", slot)
	}
	for _, a := range addrs {
		if a != owner {
			to = a
			break
		}
	}
	redisCLI(t, to, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[owner])
	redisCLI(t, owner, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[to])
	host, port, _ := net.SplitHostPort(to)
	for _, k := range strings.Fields(redisCLI(t, owner, "CLUSTER", "GETKEYSINSLOT", slot, "1000")) {
		redisCLI(t, owner, "MIGRATE", host, port, k, "0", "5000")
	}
	redisCLI(t, to, "CLUSTER", "SETSLOT", slot, "NODE", ids[to])
	redisCLI(t, owner, "CLUSTER", "SETSLOT", slot, "NODE", ids[to])
	for _, a := range addrs {
		if a != to && a != owner {
			redisCLI(t, a, "CLUSTER", "SETSLOT", slot, "NODE", ids[to])
		}
	}
	return owner, to
}

// TestChannelsSurviveResharding: when Redis Cluster moves a watched
// channel's slot to another master (which unsubscribes the nodes from
// it), the nodes subscribe again on the new owner and publishes reach
// every member again, in order, with the history carried over.
func TestChannelsSurviveResharding(t *testing.T) {
	addrs := storagetest.RedisCluster(t)
	yml := "storage: {type: redis, nodeTTL: 3s, redis: {addrs: [" + strings.Join(addrs, ", ") + "]}}\n" +
		yamlAPI(sharedChannelConfig, sharedChannelRoutes)
	gs := []*Gateway{startGateway(t, yml), startGateway(t, yml)}
	ms := membersOn(t, gs, 1)
	for _, m := range ms {
		send(t, m.c, `{"action":"join","ch":"hist:r"}`)
		if got := readText(t, m.c); got != "joined" {
			t.Fatalf("join: %q", got)
		}
	}
	publish(t, gs[0], "hist:r", "1", "")
	for _, m := range ms {
		if f := readFrame(t, m.c); f["offset"] != float64(1) {
			t.Fatalf("before the move: %v", f)
		}
	}
	from, to := moveSlot(t, addrs, "{t|test|hist:r}")
	t.Logf("moved the channel's slot from %s to %s", from, to)

	// Publishes made while a node subscribes again may miss it; once one
	// reaches both nodes, every later one does, in order.
	next := 2
	eventually(t, "a publish reaches both nodes after the move", func() error {
		res, err := publishVia(gs[next%2], "hist:r", fmt.Sprint(next))
		next++
		if err != nil {
			return err
		}
		if res != (publishResult{Delivered: 1, Nodes: 1}) {
			return fmt.Errorf("%+v", res)
		}
		return nil
	})
	first := next - 1
	for i := next; i < next+10; i++ {
		if res := publish(t, gs[i%2], "hist:r", fmt.Sprint(i), ""); res != (publishResult{Delivered: 1, Nodes: 1}) {
			t.Fatalf("publish %d after the move: %+v", i, res)
		}
	}
	for _, m := range ms {
		// Skip what came before the first publish that reached both.
		for {
			f := readFrame(t, m.c)
			if f["offset"] == float64(first) {
				break
			}
		}
		for i := next; i < next+10; i++ {
			if f := readFrame(t, m.c); f["offset"] != float64(i) || f["data"] != float64(i) {
				t.Fatalf("member on node %d: %v, want offset %d (the history moved with the slot)", m.node, f, i)
			}
		}
	}
}
