package storagetest

import (
	"context"
	"testing"
	"time"

	"github.com/portico-gateway/portico/storage"
)

// HeartbeatKeepsRecord registers node "n1" with a record "c1" in reg,
// then heartbeats every `every` for `hold` and fails the test if the
// record is ever missing. A backend's test opens reg with a record lease
// shorter than hold, so the record survives only if heartbeats renew it.
// (Outside Run: the suite's constructor sets only the node TTL.)
func HeartbeatKeepsRecord(t *testing.T, reg storage.Registry, hold, every time.Duration) {
	t.Helper()
	ctx := context.Background()
	if err := reg.RegisterNode(ctx, &storage.Node{ID: "n1"}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Put(ctx, &storage.Record{ID: "c1", Node: "n1"}); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(hold); time.Now().Before(end); {
		time.Sleep(every) // heartbeats are periodic by nature: nothing to wait on
		if err := reg.Heartbeat(ctx, "n1"); err != nil {
			t.Fatalf("Heartbeat: %v", err)
		}
		if _, err := reg.Get(ctx, "c1"); err != nil {
			t.Fatalf("Get while heartbeating: %v", err)
		}
	}
}
