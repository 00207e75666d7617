package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/portico-gateway/portico/storage"
)

func testPutGetDelete(h *harness) {
	node := h.node("n1")
	want := h.record(h.id("c1"), node)
	h.put(want)
	h.wantRecord(h.get(want.ID), want)
	if err := h.reg.Delete(h.ctx, want.ID); err != nil {
		h.Fatalf("Delete: %v", err)
	}
	h.wantMissing(want.ID)
	if ids := h.listIDs(node); len(ids) != 0 {
		h.Fatalf("ListByNode after Delete = %v, want none", ids)
	}
}

func testGetMissing(h *harness) {
	h.node("n1")
	h.wantMissing(h.id("never-put"))
}

func testDeleteMissing(h *harness) {
	if err := h.reg.Delete(h.ctx, h.id("never-put")); err != nil {
		h.Fatalf("Delete of a missing id: %v", err)
	}
	if err := h.reg.Delete(h.ctx, h.id("never-put")); err != nil {
		h.Fatalf("second Delete of a missing id: %v", err)
	}
}

func testPutReplaces(h *harness) {
	node := h.node("n1")
	other := h.node("n2")
	first := h.record(h.id("c1"), node)
	h.put(first)
	// Every field changes; zero times and a nil authorizer must not keep
	// the previous values.
	second := &storage.Record{
		ID: first.ID, Node: other, API: "other-api", Stage: "dev",
		LastActiveAt: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		SourceIP:     "198.51.100.1",
	}
	h.put(second)
	h.wantRecord(h.get(first.ID), second)
	if ids := h.listIDs(node); len(ids) != 0 {
		h.Fatalf("ListByNode(old node) = %v, want none after the record moved", ids)
	}
	if ids := h.listIDs(other); !slices.Equal(ids, []string{first.ID}) {
		h.Fatalf("ListByNode(new node) = %v, want [%s]", ids, first.ID)
	}
}

func testTouch(h *harness) {
	rec := h.record(h.id("c1"), h.node("n1"))
	h.put(rec)
	base := rec.LastActiveAt
	later := base.Add(1500 * time.Millisecond).Add(7) // odd nanoseconds survive
	h.touch(rec.ID, later)
	if got := h.get(rec.ID).LastActiveAt; !got.Equal(later) {
		h.Fatalf("after Touch(later) LastActiveAt = %v, want %v", got, later)
	}
	h.touch(rec.ID, base)          // lower: ignored
	h.touch(rec.ID, later.Add(-1)) // one nanosecond lower: ignored
	h.touch(rec.ID, later)         // equal: no change
	h.touch(rec.ID, time.Time{})   // zero: ignored
	got := h.get(rec.ID)
	if !got.LastActiveAt.Equal(later) {
		h.Fatalf("Touch lowered LastActiveAt to %v (want %v)", got.LastActiveAt, later)
	}
	want := *rec
	want.LastActiveAt = later
	h.wantRecord(got, &want) // nothing else changed
	h.touch(rec.ID, later.Add(1))
	if got := h.get(rec.ID).LastActiveAt; !got.Equal(later.Add(1)) {
		h.Fatalf("Touch one nanosecond later: LastActiveAt = %v, want %v", got, later.Add(1))
	}
}

func testTouchMany(h *harness) {
	node := h.node("n1")
	ids := h.putMany("c", node, 5)
	ahead := h.record(h.id("ahead"), node)
	ahead.LastActiveAt = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	h.put(ahead)
	at := time.Date(2026, 1, 1, 0, 0, 0, 42, time.UTC)
	batch := append(slices.Clone(ids), ahead.ID, h.id("missing"))
	if err := h.reg.TouchMany(h.ctx, batch, at); err != nil {
		h.Fatalf("TouchMany: %v", err)
	}
	for _, id := range ids {
		if got := h.get(id).LastActiveAt; !got.Equal(at) {
			h.Errorf("%s LastActiveAt = %v, want %v", id, got, at)
		}
	}
	if got := h.get(ahead.ID).LastActiveAt; !got.Equal(ahead.LastActiveAt) {
		h.Errorf("TouchMany lowered LastActiveAt of %s to %v", ahead.ID, got)
	}
	h.wantMissing(h.id("missing"))
	if err := h.reg.TouchMany(h.ctx, nil, at); err != nil {
		h.Fatalf("TouchMany(nil): %v", err)
	}
}

func testTouchMissing(h *harness) {
	node := h.node("n1")
	id := h.id("missing")
	h.touch(id, time.Now())
	if err := h.reg.TouchMany(h.ctx, []string{id, id}, time.Now()); err != nil {
		h.Fatalf("TouchMany of missing ids: %v", err)
	}
	h.wantMissing(id)
	if ids := h.listIDs(node); len(ids) != 0 {
		h.Fatalf("ListByNode = %v after touching missing ids, want none", ids)
	}
}

func testDeleteIsFinal(h *harness) {
	node := h.node("n1")
	rec := h.record(h.id("c1"), node)
	h.put(rec)
	if err := h.reg.Delete(h.ctx, rec.ID); err != nil {
		h.Fatalf("Delete: %v", err)
	}
	h.put(rec) // a late Put: ignored without error
	h.wantMissing(rec.ID)
	h.touch(rec.ID, time.Now())
	if err := h.reg.TouchMany(h.ctx, []string{rec.ID}, time.Now()); err != nil {
		h.Fatalf("TouchMany: %v", err)
	}
	h.wantMissing(rec.ID)
	// Deleting a never-put id blocks it too.
	early := h.record(h.id("c2"), node)
	if err := h.reg.Delete(h.ctx, early.ID); err != nil {
		h.Fatalf("Delete: %v", err)
	}
	h.put(early)
	h.wantMissing(early.ID)
	if ids := h.listIDs(node); len(ids) != 0 {
		h.Fatalf("ListByNode = %v, want none", ids)
	}
}

// DeleteMany deletes records of several nodes at once, more than one
// backend batch of them (DynamoDB's BatchWriteItem takes 25), skips
// missing and repeated ids, and its deletes are as final as Delete's.
func testDeleteMany(h *harness) {
	a, b := h.node("a"), h.node("b")
	ids := h.putMany("a", a, 60)
	other := h.record(h.id("b0"), b)
	h.put(other)
	kept := h.record(h.id("b1"), b)
	h.put(kept)
	if err := h.reg.DeleteMany(h.ctx, nil); err != nil {
		h.Fatalf("DeleteMany(nil): %v", err)
	}
	del := append(slices.Clone(ids[:58]), other.ID, h.id("never-put"), ids[3])
	if err := h.reg.DeleteMany(h.ctx, del); err != nil {
		h.Fatalf("DeleteMany: %v", err)
	}
	for _, id := range del {
		h.wantMissing(id)
	}
	if got := h.listIDs(a); !slices.Equal(got, ids[58:]) {
		h.Fatalf("ListByNode(a) after DeleteMany = %v, want %v", got, ids[58:])
	}
	if got := h.listIDs(b); !slices.Equal(got, []string{kept.ID}) {
		h.Fatalf("ListByNode(b) after DeleteMany = %v, want [%s]", got, kept.ID)
	}
	// Late Puts of the deleted ids, and of the never-put one, are ignored.
	for _, id := range del {
		h.put(h.record(id, a))
		h.wantMissing(id)
	}
	if err := h.reg.DeleteMany(h.ctx, del); err != nil {
		h.Fatalf("second DeleteMany: %v", err)
	}
}

func testListByNode(h *harness) {
	a, b := h.node("a"), h.node("b")
	wantA := h.putMany("a", a, 3)
	wantB := h.putMany("b", b, 2)
	if got := h.listIDs(a); !slices.Equal(got, wantA) {
		h.Fatalf("ListByNode(a) = %v, want %v", got, wantA)
	}
	if got := h.listIDs(b); !slices.Equal(got, wantB) {
		h.Fatalf("ListByNode(b) = %v, want %v", got, wantB)
	}
	if err := h.reg.Delete(h.ctx, wantA[1]); err != nil {
		h.Fatalf("Delete: %v", err)
	}
	wantA = slices.Delete(wantA, 1, 2)
	if got := h.listIDs(a); !slices.Equal(got, wantA) {
		h.Fatalf("ListByNode(a) after Delete = %v, want %v", got, wantA)
	}
	recs, err := h.reg.ListByNode(h.ctx, b)
	if err != nil {
		h.Fatalf("ListByNode: %v", err)
	}
	for _, r := range recs {
		h.wantRecord(r, h.record(r.ID, b))
	}
	if got := h.listIDs(h.id("unknown")); len(got) != 0 {
		h.Fatalf("ListByNode(unknown node) = %v, want none", got)
	}
}

func testAuthorizer(h *harness) {
	node := h.node("n1")
	cases := map[string]map[string]string{
		"nil":    nil,
		"single": {"principalId": "me"},
		"mixed": {
			"principalId": "user|123", "empty": "", "unicode": "héllo ✓",
			"json": `{"a":[1,2]}`, "number": "42", "bool": "true",
			"with space": "a b", "newline": "line1\nline2",
		},
	}
	for name, auth := range cases {
		r := h.record(h.id(name), node)
		r.Authorizer = auth
		h.put(r)
		h.wantRecord(h.get(r.ID), r)
	}
	empty := h.record(h.id("empty-map"), node)
	empty.Authorizer = map[string]string{}
	h.put(empty)
	if got := h.get(empty.ID).Authorizer; len(got) != 0 {
		h.Fatalf("empty authorizer came back as %v", got)
	}
}

func testNodes(h *harness) {
	started := time.Date(2024, 1, 2, 3, 4, 5, 600, time.UTC)
	a := &storage.Node{ID: h.id("a"), Address: "10.0.0.1:9000", StartedAt: started}
	b := &storage.Node{ID: h.id("b"), Address: "10.0.0.2:9000", StartedAt: started.Add(time.Minute)}
	for _, n := range []*storage.Node{a, b} {
		if err := h.reg.RegisterNode(h.ctx, n); err != nil {
			h.Fatalf("RegisterNode(%s): %v", n.ID, err)
		}
	}
	wantNode := func(got map[string]*storage.Node, want *storage.Node) {
		h.Helper()
		n, ok := got[want.ID]
		switch {
		case !ok:
			h.Fatalf("Nodes lacks %s", want.ID)
		case n.Address != want.Address || !n.StartedAt.Equal(want.StartedAt):
			h.Fatalf("node %s = %+v, want %+v", want.ID, n, want)
		}
	}
	got := h.nodeIDs()
	wantNode(got, a)
	wantNode(got, b)
	if _, ok := got[h.id("unknown")]; ok {
		h.Fatal("Nodes lists a node that never registered")
	}
	for _, id := range []string{a.ID, b.ID} {
		if err := h.reg.Heartbeat(h.ctx, id); err != nil {
			h.Fatalf("Heartbeat(%s): %v", id, err)
		}
	}
	if err := h.reg.Heartbeat(h.ctx, h.id("unknown")); !errors.Is(err, storage.ErrNotFound) {
		h.Fatalf("Heartbeat(unknown) = %v, want ErrNotFound", err)
	}
	moved := &storage.Node{ID: a.ID, Address: "10.0.0.9:9001", StartedAt: started.Add(time.Hour)}
	if err := h.reg.RegisterNode(h.ctx, moved); err != nil {
		h.Fatalf("RegisterNode again: %v", err)
	}
	got = h.nodeIDs()
	wantNode(got, moved)
	wantNode(got, b)
}

func testDeadNodeExpires(h *harness) {
	dead, alive := h.node("dead"), h.node("alive")
	deadRec, aliveRec := h.record(h.id("d1"), dead), h.record(h.id("a1"), alive)
	h.put(deadRec)
	h.put(aliveRec)
	h.wantRecord(h.get(deadRec.ID), deadRec)

	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() { // the live node keeps heartbeating
		tick := time.NewTicker(h.ttl / 5)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				done <- nil
				return
			case <-tick.C:
				if err := h.reg.Heartbeat(h.ctx, alive); err != nil {
					done <- fmt.Errorf("Heartbeat(alive): %w", err)
					return
				}
			}
		}
	}()
	defer func() {
		close(stop)
		if err := <-done; err != nil {
			h.Error(err)
		}
	}()

	// Expiry has second resolution in some backends: allow for it.
	h.eventually(h.ttl+5*time.Second, "dead node's record expires", func() bool {
		_, err := h.reg.Get(h.ctx, deadRec.ID)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			h.Fatalf("Get: %v", err)
		}
		return err != nil
	})
	h.eventually(5*time.Second, "dead node leaves Nodes", func() bool {
		_, ok := h.nodeIDs()[dead]
		return !ok
	})
	if ids := h.listIDs(dead); len(ids) != 0 {
		h.Fatalf("ListByNode(dead) = %v, want none", ids)
	}
	if err := h.reg.Heartbeat(h.ctx, dead); !errors.Is(err, storage.ErrNotFound) {
		h.Fatalf("Heartbeat(dead) = %v, want ErrNotFound", err)
	}
	h.wantRecord(h.get(aliveRec.ID), aliveRec)
	if _, ok := h.nodeIDs()[alive]; !ok {
		h.Fatal("heartbeating node left Nodes")
	}
	if ids := h.listIDs(alive); !slices.Equal(ids, []string{aliveRec.ID}) {
		h.Fatalf("ListByNode(alive) = %v", ids)
	}
}

func testLiveNodeKeepsRecords(h *harness) {
	node := h.node("n1")
	rec := h.record(h.id("c1"), node)
	h.put(rec)
	end := time.Now().Add(3 * h.ttl)
	for time.Now().Before(end) {
		time.Sleep(h.ttl / 5)
		if err := h.reg.Heartbeat(h.ctx, node); err != nil {
			h.Fatalf("Heartbeat: %v", err)
		}
		h.wantRecord(h.get(rec.ID), rec)
	}
	if ids := h.listIDs(node); !slices.Equal(ids, []string{rec.ID}) {
		h.Fatalf("ListByNode = %v", ids)
	}
}

// version k of a record: every field derives from k, and odd versions
// carry an authorizer, so a torn write shows as fields that disagree.
func version(id, node string, k int) *storage.Record {
	s := strconv.Itoa(k)
	r := &storage.Record{
		ID: id, Node: node, API: "api-" + s, Stage: "stage-" + s,
		ConnectedAt:  time.Unix(int64(1_700_000_000+k), 0),
		LastActiveAt: time.Unix(int64(1_700_000_000+k), 0),
		SourceIP:     "10.0.0." + s, UserAgent: "ua-" + s,
	}
	if k%2 == 1 {
		r.Authorizer = map[string]string{"k": s, "principalId": "p-" + s}
	}
	return r
}

// wantComplete checks that id is absent or one complete version.
func (h *harness) wantComplete(id, node string) (present bool) {
	h.Helper()
	got, err := h.reg.Get(h.ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return false
	}
	if err != nil {
		h.Fatalf("Get: %v", err)
	}
	k, err := strconv.Atoi(got.API[len("api-"):])
	if err != nil {
		h.Fatalf("torn record %+v", got)
	}
	h.wantRecord(got, version(id, node, k))
	return true
}

func testConcurrentPutDelete(h *harness) {
	node := h.node("n1")
	id := h.id("c1")
	const workers, rounds = 16, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*2)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				if err := h.reg.Put(h.ctx, version(id, node, w*rounds+i)); err != nil {
					errs <- err
				}
				if (w+i)%3 == 0 {
					if err := h.reg.Delete(h.ctx, id); err != nil {
						errs <- err
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		h.Fatalf("concurrent Put/Delete: %v", err)
	}
	present := h.wantComplete(id, node)
	if ids := h.listIDs(node); present != slices.Contains(ids, id) {
		h.Fatalf("Get present=%v but ListByNode = %v", present, ids)
	}
	// A Delete issued after everything else wins.
	if err := h.reg.Delete(h.ctx, id); err != nil {
		h.Fatalf("Delete: %v", err)
	}
	h.wantMissing(id)
}

func testConcurrentPuts(h *harness) {
	node := h.node("n1")
	id := h.id("c1")
	const workers, rounds = 16, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				if err := h.reg.Put(h.ctx, version(id, node, w*rounds+i)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		h.Fatalf("concurrent Put: %v", err)
	}
	if !h.wantComplete(id, node) {
		h.Fatal("record missing after concurrent Puts")
	}
}

func testCopies(h *harness) {
	node := h.node("n1")
	rec := h.record(h.id("c1"), node)
	want := h.record(rec.ID, node)
	h.put(rec)
	rec.Stage = "mutated"
	rec.Authorizer["principalId"] = "mutated"
	h.wantRecord(h.get(rec.ID), want)

	got := h.get(rec.ID)
	got.API = "mutated"
	got.Authorizer["principalId"] = "mutated"
	got.Authorizer["extra"] = "x"
	h.wantRecord(h.get(rec.ID), want)

	list, err := h.reg.ListByNode(h.ctx, node)
	if err != nil || len(list) != 1 {
		h.Fatalf("ListByNode = %v, %v", list, err)
	}
	list[0].Authorizer["principalId"] = "mutated"
	h.wantRecord(h.get(rec.ID), want)

	nodes, err := h.reg.Nodes(h.ctx)
	if err != nil {
		h.Fatalf("Nodes: %v", err)
	}
	for _, n := range nodes {
		n.Address = "mutated"
	}
	for _, n := range h.nodeIDs() {
		if n.Address == "mutated" {
			h.Fatalf("mutating a node returned by Nodes changed the registry")
		}
	}
}
