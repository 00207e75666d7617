package dynamodb

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"go.uber.org/goleak"

	"github.com/portico-gateway/portico/storage"
	"github.com/portico-gateway/portico/storage/storagetest"
)

var quiet = slog.New(slog.DiscardHandler)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func uniqueTable(tb testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return "portico_test_" + hex.EncodeToString(b)
}

// open returns a registry on a fresh table, dropped when tb ends.
func open(tb testing.TB, o Options) *Registry {
	tb.Helper()
	if o.Table == "" {
		o.Table = uniqueTable(tb)
	}
	if o.Logger == nil {
		o.Logger = quiet
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reg, err := New(ctx, o)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		_, err := reg.c.DeleteTable(context.Background(), &ddb.DeleteTableInput{TableName: &reg.table})
		if err != nil {
			tb.Errorf("DeleteTable: %v", err)
		}
		reg.Close()
	})
	return reg
}

func TestConformance(t *testing.T) {
	endpoint := storagetest.DynamoEndpoint(t)
	storagetest.Run(t, func(t *testing.T, nodeTTL time.Duration) storage.Registry {
		reg := open(t, Options{EndpointURL: endpoint, CreateTable: true, NodeTTL: nodeTTL})
		if !reg.useIndex {
			t.Fatal("CreateTable made no usable " + IndexName)
		}
		return reg
	})
}

// The same suite on a table without node-index: ListByNode, Nodes and
// lease renewal scan.
func TestConformanceWithoutIndex(t *testing.T) {
	endpoint := storagetest.DynamoEndpoint(t)
	storagetest.Run(t, func(t *testing.T, nodeTTL time.Duration) storage.Registry {
		table := uniqueTable(t)
		ctx := context.Background()
		raw, err := newRegistry(ctx, Options{EndpointURL: endpoint, Table: table, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		_, err = raw.c.CreateTable(ctx, &ddb.CreateTableInput{
			TableName:   &table,
			BillingMode: types.BillingModePayPerRequest,
			AttributeDefinitions: []types.AttributeDefinition{
				{AttributeName: aws.String(aID), AttributeType: types.ScalarAttributeTypeS},
			},
			KeySchema: []types.KeySchemaElement{{AttributeName: aws.String(aID), KeyType: types.KeyTypeHash}},
		})
		if err != nil {
			t.Fatalf("CreateTable: %v", err)
		}
		t.Cleanup(func() {
			if _, err := raw.c.DeleteTable(ctx, &ddb.DeleteTableInput{TableName: &table}); err != nil {
				t.Errorf("DeleteTable: %v", err)
			}
			raw.Close()
		})
		if _, err := raw.describe(ctx); err != nil {
			t.Fatal(err)
		}
		reg, err := New(context.Background(), Options{EndpointURL: endpoint, Table: table, NodeTTL: nodeTTL, Logger: quiet})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		if reg.useIndex {
			t.Fatal("registry uses an index that was dropped")
		}
		return reg
	})
}

// Records outlive their lease as long as their node heartbeats.
func TestLeaseRenewal(t *testing.T) {
	endpoint := storagetest.DynamoEndpoint(t)
	reg := open(t, Options{EndpointURL: endpoint, CreateTable: true, NodeTTL: time.Second, RecordTTL: 2 * time.Second})
	storagetest.HeartbeatKeepsRecord(t, reg, 5*time.Second, 100*time.Millisecond)
}

// A tombstone blocks late writes only for its period.
func TestTombstoneExpires(t *testing.T) {
	endpoint := storagetest.DynamoEndpoint(t)
	reg := open(t, Options{EndpointURL: endpoint, CreateTable: true, TombstoneTTL: time.Second})
	ctx := context.Background()
	if err := reg.RegisterNode(ctx, &storage.Node{ID: "n1"}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := reg.Put(ctx, &storage.Record{ID: "c1", Node: "n1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := reg.Get(ctx, "c1"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Put still ignored after the tombstone period")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestReservedIDs(t *testing.T) {
	endpoint := storagetest.DynamoEndpoint(t)
	reg := open(t, Options{EndpointURL: endpoint, CreateTable: true})
	ctx := context.Background()
	if err := reg.RegisterNode(ctx, &storage.Node{ID: "n1"}); err != nil {
		t.Fatal(err)
	}
	if err := reg.Put(ctx, &storage.Record{ID: "node#n1", Node: "n1"}); err == nil {
		t.Error("Put of an id in the node space accepted")
	}
	if err := reg.Put(ctx, &storage.Record{ID: "c1", Node: nodesPartition}); err == nil {
		t.Error("Put on the reserved node partition accepted")
	}
	if _, err := reg.Get(ctx, "node#n1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get(node#n1) = %v, want ErrNotFound", err)
	}
	if err := reg.Delete(ctx, "node#n1"); err != nil {
		t.Fatal(err)
	}
	if err := reg.Heartbeat(ctx, "n1"); err != nil {
		t.Errorf("Delete of node#n1 removed the node: %v", err)
	}
}

type recorder struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *recorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.String()
}

func TestMissingTable(t *testing.T) {
	endpoint := storagetest.DynamoEndpoint(t)
	_, err := New(context.Background(), Options{EndpointURL: endpoint, Table: uniqueTable(t), Logger: quiet})
	if err == nil || errors.Is(err, storage.ErrUnavailable) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("New on a missing table = %v", err)
	}
}

// Servers without UpdateTimeToLive (dynalite) only cause a warning.
func TestWarnings(t *testing.T) {
	endpoint := storagetest.DynamoEndpoint(t)
	var logs recorder
	open(t, Options{EndpointURL: endpoint, CreateTable: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ttl := reflectTTL(t, endpoint)
	if !ttl && !strings.Contains(logs.String(), "enabling TTL failed") {
		t.Fatalf("no warning about TTL; logs:\n%s", logs.String())
	}
}

// reflectTTL reports whether the server implements UpdateTimeToLive.
func reflectTTL(t *testing.T, endpoint string) bool {
	reg := open(t, Options{EndpointURL: endpoint, CreateTable: true})
	_, err := reg.c.UpdateTimeToLive(context.Background(), &ddb.UpdateTimeToLiveInput{
		TableName: &reg.table,
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(aExpires), Enabled: aws.Bool(true),
		},
	})
	return err == nil
}

func TestUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := New(ctx, Options{EndpointURL: endpoint, Logger: quiet}); !errors.Is(err, storage.ErrUnavailable) {
		t.Fatalf("New against a closed port = %v, want ErrUnavailable", err)
	}
	reg, err := newRegistry(ctx, Options{EndpointURL: endpoint, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	reg.useIndex = true
	checks := map[string]error{
		"Put":          reg.Put(ctx, &storage.Record{ID: "c", Node: "n"}),
		"Delete":       reg.Delete(ctx, "c"),
		"TouchMany":    reg.TouchMany(ctx, []string{"a", "b"}, time.Now()),
		"Heartbeat":    reg.Heartbeat(ctx, "n"),
		"RegisterNode": reg.RegisterNode(ctx, &storage.Node{ID: "n"}),
	}
	_, checks["Get"] = reg.Get(ctx, "c")
	_, checks["ListByNode"] = reg.ListByNode(ctx, "n")
	_, checks["Nodes"] = reg.Nodes(ctx)
	for op, err := range checks {
		if !errors.Is(err, storage.ErrUnavailable) {
			t.Errorf("%s = %v, want ErrUnavailable", op, err)
		}
	}
}

func BenchmarkPut(b *testing.B) {
	storagetest.BenchmarkPut(b, open(b, Options{EndpointURL: storagetest.DynamoEndpoint(b), CreateTable: true}))
}

func BenchmarkDeleteMany(b *testing.B) {
	storagetest.BenchmarkDeleteMany(b, open(b, Options{EndpointURL: storagetest.DynamoEndpoint(b), CreateTable: true}))
}

func BenchmarkGet(b *testing.B) {
	storagetest.BenchmarkGet(b, open(b, Options{EndpointURL: storagetest.DynamoEndpoint(b), CreateTable: true}))
}

// Nodes starting together against a missing table: one creates it, the
// others find it CREATING and must wait until it is ACTIVE before they
// register (on DynamoDB, creating takes seconds).
func TestConcurrentCreateTable(t *testing.T) {
	endpoint := storagetest.DynamoEndpointSlowTables(t, 500)
	table := uniqueTable(t)
	regs := make([]*Registry, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range regs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			regs[i], errs[i] = New(ctx, Options{EndpointURL: endpoint, Table: table, CreateTable: true, Logger: quiet})
			if errs[i] == nil {
				errs[i] = regs[i].RegisterNode(ctx, &storage.Node{ID: fmt.Sprintf("n%d", i)})
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if regs[i] != nil {
			defer regs[i].Close()
		}
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
}
