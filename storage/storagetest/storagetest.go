// Package storagetest is the conformance suite of storage.Registry: every
// backend's tests call Run with a constructor, and every backend passes
// the same subtests. servers.go starts the real servers the shared
// backends are tested against (redis-server, a three-master Redis
// Cluster, dynalite).
//
// The suite assumes nothing about the namespace it is given beyond what
// it wrote itself: ids and node ids carry a random per-subtest prefix, so
// a constructor may share one server, database or table between
// subtests, and Nodes is checked for containment rather than equality.
package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/portico-gateway/portico/storage"
)

// Node TTLs handed to the constructor: long where liveness must not get in
// the way, short where the subtest waits for expiry. DynamoDB keeps
// expiry in whole seconds, so the short one is no shorter than a second.
const (
	longTTL  = time.Minute
	shortTTL = time.Second
)

// Run runs the conformance suite against the registries newRegistry
// returns. newRegistry is called once per subtest, possibly from parallel
// subtests; it returns a registry whose nodes live for nodeTTL after each
// RegisterNode or Heartbeat. Run closes every registry when its subtest
// ends; the constructor registers any other cleanup with t.Cleanup.
func Run(t *testing.T, newRegistry func(t *testing.T, nodeTTL time.Duration) storage.Registry) {
	tests := []struct {
		name string
		ttl  time.Duration
		fn   func(h *harness)
	}{
		{"PutGetDelete", longTTL, testPutGetDelete},
		{"GetMissing", longTTL, testGetMissing},
		{"DeleteMissing", longTTL, testDeleteMissing},
		{"PutReplaces", longTTL, testPutReplaces},
		{"TouchRaisesNeverLowers", longTTL, testTouch},
		{"TouchMany", longTTL, testTouchMany},
		{"TouchMissingDoesNotCreate", longTTL, testTouchMissing},
		{"DeleteIsFinal", longTTL, testDeleteIsFinal},
		{"DeleteMany", longTTL, testDeleteMany},
		{"ListByNode", longTTL, testListByNode},
		{"AuthorizerRoundTrip", longTTL, testAuthorizer},
		{"Nodes", longTTL, testNodes},
		{"DeadNodeExpires", shortTTL, testDeadNodeExpires},
		{"LiveNodeKeepsRecords", shortTTL, testLiveNodeKeepsRecords},
		{"ConcurrentPutDelete", longTTL, testConcurrentPutDelete},
		{"ConcurrentPuts", longTTL, testConcurrentPuts},
		{"RecordsAreCopies", longTTL, testCopies},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := newRegistry(t, tc.ttl)
			t.Cleanup(func() {
				if err := reg.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			tc.fn(&harness{T: t, reg: reg, ctx: ctx, ttl: tc.ttl, prefix: randomPrefix(t)})
		})
	}
}

type harness struct {
	*testing.T
	reg    storage.Registry
	ctx    context.Context
	ttl    time.Duration
	prefix string
}

func randomPrefix(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "t" + hex.EncodeToString(b) + "-"
}

// id returns a name unique to this subtest run.
func (h *harness) id(name string) string { return h.prefix + name }

// node registers a node and returns its id.
func (h *harness) node(name string) string {
	h.Helper()
	n := &storage.Node{ID: h.id(name), Address: "10.0.0.1:9000", StartedAt: time.Now()}
	if err := h.reg.RegisterNode(h.ctx, n); err != nil {
		h.Fatalf("RegisterNode(%s): %v", n.ID, err)
	}
	return n.ID
}

// record returns a complete record of id held by node.
func (h *harness) record(id, node string) *storage.Record {
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	return &storage.Record{
		ID: id, Node: node, API: "chat", Stage: "prod",
		ConnectedAt: at, LastActiveAt: at.Add(time.Second),
		SourceIP: "203.0.113.7", UserAgent: "client/1.0",
		Authorizer: map[string]string{"principalId": "user-1", "scope": "read write"},
	}
}

func (h *harness) put(r *storage.Record) {
	h.Helper()
	if err := h.reg.Put(h.ctx, r); err != nil {
		h.Fatalf("Put(%s): %v", r.ID, err)
	}
}

// putMany puts n records on node, with ids prefix0 ... prefix<n-1>
// (under the harness's prefix), and returns their ids in that order.
func (h *harness) putMany(prefix, node string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		r := h.record(h.id(prefix+strconv.Itoa(i)), node)
		h.put(r)
		ids[i] = r.ID
	}
	return ids
}

func (h *harness) get(id string) *storage.Record {
	h.Helper()
	r, err := h.reg.Get(h.ctx, id)
	if err != nil {
		h.Fatalf("Get(%s): %v", id, err)
	}
	return r
}

func (h *harness) wantMissing(id string) {
	h.Helper()
	r, err := h.reg.Get(h.ctx, id)
	if !errors.Is(err, storage.ErrNotFound) {
		h.Fatalf("Get(%s) = %+v, %v; want ErrNotFound", id, r, err)
	}
}

func (h *harness) touch(id string, at time.Time) {
	h.Helper()
	if err := h.reg.Touch(h.ctx, id, at); err != nil {
		h.Fatalf("Touch(%s): %v", id, err)
	}
}

func (h *harness) listIDs(node string) []string {
	h.Helper()
	recs, err := h.reg.ListByNode(h.ctx, node)
	if err != nil {
		h.Fatalf("ListByNode(%s): %v", node, err)
	}
	ids := make([]string, 0, len(recs))
	for _, r := range recs {
		if r.Node != node {
			h.Errorf("ListByNode(%s) returned %s held by %s", node, r.ID, r.Node)
		}
		ids = append(ids, r.ID)
	}
	slices.Sort(ids)
	return ids
}

func (h *harness) nodeIDs() map[string]*storage.Node {
	h.Helper()
	ns, err := h.reg.Nodes(h.ctx)
	if err != nil {
		h.Fatalf("Nodes: %v", err)
	}
	out := make(map[string]*storage.Node, len(ns))
	for _, n := range ns {
		out[n.ID] = n
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func (h *harness) eventually(within time.Duration, what string, cond func() bool) {
	h.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			h.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// diff describes how got differs from want; "" when they are equal.
func diff(got, want *storage.Record) string {
	var d []string
	str := func(field, g, w string) {
		if g != w {
			d = append(d, fmt.Sprintf("%s = %q, want %q", field, g, w))
		}
	}
	tm := func(field string, g, w time.Time) {
		if !g.Equal(w) {
			d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w))
		}
	}
	str("ID", got.ID, want.ID)
	str("Node", got.Node, want.Node)
	str("API", got.API, want.API)
	str("Stage", got.Stage, want.Stage)
	tm("ConnectedAt", got.ConnectedAt, want.ConnectedAt)
	tm("LastActiveAt", got.LastActiveAt, want.LastActiveAt)
	str("SourceIP", got.SourceIP, want.SourceIP)
	str("UserAgent", got.UserAgent, want.UserAgent)
	switch {
	case want.Authorizer == nil && got.Authorizer != nil:
		d = append(d, fmt.Sprintf("Authorizer = %v, want nil", got.Authorizer))
	case want.Authorizer != nil && !maps.Equal(got.Authorizer, want.Authorizer):
		d = append(d, fmt.Sprintf("Authorizer = %v, want %v", got.Authorizer, want.Authorizer))
	}
	if len(d) == 0 {
		return ""
	}
	return fmt.Sprint(d)
}

func (h *harness) wantRecord(got, want *storage.Record) {
	h.Helper()
	if d := diff(got, want); d != "" {
		h.Fatalf("record %s: %s", want.ID, d)
	}
}
