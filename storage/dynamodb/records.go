package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"golang.org/x/sync/errgroup"

	"github.com/portico-gateway/portico/storage"
)

// Attribute names.
const (
	aID         = "connectionId"
	aNode       = "node"
	aAPI        = "api"
	aStage      = "stage"
	aConnected  = "connectedAt"  // N, Unix nanoseconds; absent for the zero time
	aLastActive = "lastActiveAt" // N, Unix nanoseconds; absent for the zero time
	aSourceIP   = "sourceIp"
	aUserAgent  = "userAgent"
	aAuthorizer = "authorizer" // M of S; absent for a nil map
	aExpires    = "expiresAt"  // N, Unix seconds; the table's TTL attribute
	aTombstone  = "tombstone"  // BOOL, only on tombstones
	aNodeID     = "nodeId"
	aAddress    = "address"
	aStarted    = "startedAt"
)

const (
	nodeKeyPrefix  = "node#"
	nodesPartition = "#nodes" // node value of node items in node-index
)

// names maps the #placeholders used in every expression to attributes.
var names = map[string]string{
	"#id": aID, "#n": aNode, "#exp": aExpires, "#tomb": aTombstone, "#last": aLastActive,
}

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

// unixCeil is t in whole seconds, rounded up so that expiry is never early.
func unixCeil(t time.Time) int64 {
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return sec
}

func key(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{aID: str(id)}
}

func putS(item map[string]types.AttributeValue, name, v string) {
	if v != "" {
		item[name] = str(v)
	}
}

func putTime(item map[string]types.AttributeValue, name string, t time.Time) {
	if !t.IsZero() {
		item[name] = num(t.UnixNano())
	}
}

func getS(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getN(item map[string]types.AttributeValue, name string) (int64, bool) {
	v, ok := item[name].(*types.AttributeValueMemberN)
	if !ok {
		return 0, false
	}
	i, err := strconv.ParseInt(v.Value, 10, 64)
	return i, err == nil
}

func getTime(item map[string]types.AttributeValue, name string) time.Time {
	if ns, ok := getN(item, name); ok {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// live reports whether item is present, not a tombstone and not expired.
func live(item map[string]types.AttributeValue, now time.Time) bool {
	if item == nil || item[aTombstone] != nil {
		return false
	}
	exp, ok := getN(item, aExpires)
	return ok && exp > now.Unix()
}

func encodeRecord(rec *storage.Record, expires int64) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{aID: str(rec.ID), aNode: str(rec.Node), aExpires: num(expires)}
	putS(item, aAPI, rec.API)
	putS(item, aStage, rec.Stage)
	putS(item, aSourceIP, rec.SourceIP)
	putS(item, aUserAgent, rec.UserAgent)
	putTime(item, aConnected, rec.ConnectedAt)
	putTime(item, aLastActive, rec.LastActiveAt)
	if rec.Authorizer != nil {
		m := make(map[string]types.AttributeValue, len(rec.Authorizer))
		for k, v := range rec.Authorizer {
			m[k] = str(v)
		}
		item[aAuthorizer] = &types.AttributeValueMemberM{Value: m}
	}
	return item
}

func decodeRecord(item map[string]types.AttributeValue) *storage.Record {
	rec := &storage.Record{
		ID: getS(item, aID), Node: getS(item, aNode), API: getS(item, aAPI), Stage: getS(item, aStage),
		ConnectedAt: getTime(item, aConnected), LastActiveAt: getTime(item, aLastActive),
		SourceIP: getS(item, aSourceIP), UserAgent: getS(item, aUserAgent),
	}
	if m, ok := item[aAuthorizer].(*types.AttributeValueMemberM); ok {
		rec.Authorizer = make(map[string]string, len(m.Value))
		for k, v := range m.Value {
			if sv, ok := v.(*types.AttributeValueMemberS); ok {
				rec.Authorizer[k] = sv.Value
			}
		}
	}
	return rec
}

func checkID(id string) error {
	if id == "" || strings.HasPrefix(id, nodeKeyPrefix) {
		return fmt.Errorf("dynamodb: invalid connection id %q", id)
	}
	return nil
}

// Put creates or replaces the record of rec.ID unless a live tombstone
// holds the id.
func (r *Registry) Put(ctx context.Context, rec *storage.Record) error {
	if rec == nil {
		return errors.New("dynamodb: put: nil record")
	}
	if err := checkID(rec.ID); err != nil {
		return err
	}
	if rec.Node == "" || rec.Node == nodesPartition {
		return fmt.Errorf("dynamodb: put %q: invalid node %q", rec.ID, rec.Node)
	}
	now := time.Now()
	_, err := r.c.PutItem(ctx, &ddb.PutItemInput{
		TableName:                &r.table,
		Item:                     encodeRecord(rec, unixCeil(now.Add(r.recordTTL))),
		ConditionExpression:      aws.String("attribute_not_exists(#tomb) OR #exp <= :now"),
		ExpressionAttributeNames: map[string]string{"#tomb": aTombstone, "#exp": aExpires},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":now": num(now.Unix()),
		},
	})
	if isConditionFailed(err) {
		return nil // a late write of a deleted connection
	}
	return wrap(fmt.Sprintf("put %q", rec.ID), err)
}

// Get returns the record of id if it is live and its node is live.
func (r *Registry) Get(ctx context.Context, id string) (*storage.Record, error) {
	if checkID(id) != nil {
		return nil, storage.ErrNotFound
	}
	out, err := r.c.GetItem(ctx, &ddb.GetItemInput{TableName: &r.table, Key: key(id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, wrap(fmt.Sprintf("get %q", id), err)
	}
	now := time.Now()
	if !live(out.Item, now) {
		return nil, storage.ErrNotFound
	}
	rec := decodeRecord(out.Item)
	ok, err := r.nodeLive(ctx, rec.Node, now)
	if err != nil {
		return nil, wrap(fmt.Sprintf("get %q: node %q", id, rec.Node), err)
	}
	if !ok {
		return nil, storage.ErrNotFound
	}
	return rec, nil
}

func (r *Registry) nodeLive(ctx context.Context, node string, now time.Time) (bool, error) {
	out, err := r.c.GetItem(ctx, &ddb.GetItemInput{
		TableName: &r.table, Key: key(nodeKeyPrefix + node), ConsistentRead: aws.Bool(true),
		ProjectionExpression: aws.String("#exp"), ExpressionAttributeNames: map[string]string{"#exp": aExpires},
	})
	if err != nil {
		return false, err
	}
	return live(out.Item, now), nil
}

// Delete replaces the record of id by a tombstone.
func (r *Registry) Delete(ctx context.Context, id string) error {
	if checkID(id) != nil {
		return nil
	}
	_, err := r.c.PutItem(ctx, &ddb.PutItemInput{TableName: &r.table, Item: r.tombstone(id, time.Now())})
	return wrap(fmt.Sprintf("delete %q", id), err)
}

// tombstone is the item that replaces the record of id when it is
// deleted at now. Writing it needs no condition: whatever the id held,
// it is deleted now.
func (r *Registry) tombstone(id string, now time.Time) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		aID: str(id), aTombstone: &types.AttributeValueMemberBOOL{Value: true},
		aExpires: num(unixCeil(now.Add(r.tombTTL))),
	}
}

// batchWriteMax is the most items BatchWriteItem takes in one call.
const batchWriteMax = 25

// DeleteMany writes the tombstones of ids with BatchWriteItem, 25 to a
// call and at most r.concurrency calls in flight. Items the server
// leaves unprocessed (throttling) are sent again after a short backoff
// until ctx ends.
func (r *Registry) DeleteMany(ctx context.Context, ids []string) error {
	seen := make(map[string]bool, len(ids))
	var reqs []types.WriteRequest
	now := time.Now()
	for _, id := range ids {
		if checkID(id) != nil || seen[id] { // one call may not name a key twice
			continue
		}
		seen[id] = true
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: r.tombstone(id, now)}})
	}
	if len(reqs) == 1 {
		return r.Delete(ctx, getS(reqs[0].PutRequest.Item, aID))
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.concurrency)
	for len(reqs) > 0 {
		n := min(len(reqs), batchWriteMax)
		chunk := reqs[:n:n]
		reqs = reqs[n:]
		g.Go(func() error { return r.batchWrite(gctx, chunk) })
	}
	return g.Wait()
}

// batchWrite sends reqs in one BatchWriteItem and sends what the server
// left unprocessed again.
func (r *Registry) batchWrite(ctx context.Context, reqs []types.WriteRequest) error {
	backoff := 10 * time.Millisecond
	for {
		out, err := r.c.BatchWriteItem(ctx, &ddb.BatchWriteItemInput{
			RequestItems: map[string][]types.WriteRequest{r.table: reqs},
		})
		if err != nil {
			return wrap(fmt.Sprintf("delete %d records", len(reqs)), err)
		}
		if reqs = out.UnprocessedItems[r.table]; len(reqs) == 0 {
			return nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return wrap(fmt.Sprintf("delete records: %d left unprocessed", len(reqs)), ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

// Touch raises LastActiveAt of id to at.
func (r *Registry) Touch(ctx context.Context, id string, at time.Time) error {
	if checkID(id) != nil || at.IsZero() {
		return nil
	}
	_, err := r.c.UpdateItem(ctx, &ddb.UpdateItemInput{
		TableName:        &r.table,
		Key:              key(id),
		UpdateExpression: aws.String("SET #last = :at"),
		ConditionExpression: aws.String("attribute_exists(#id) AND attribute_not_exists(#tomb) AND " +
			"(attribute_not_exists(#last) OR #last < :at)"),
		ExpressionAttributeNames:  map[string]string{"#id": aID, "#tomb": aTombstone, "#last": aLastActive},
		ExpressionAttributeValues: map[string]types.AttributeValue{":at": num(at.UnixNano())},
	})
	if isConditionFailed(err) {
		return nil // missing, deleted, or already more recent
	}
	return wrap(fmt.Sprintf("touch %q", id), err)
}

// TouchMany touches every id, Concurrency at a time.
func (r *Registry) TouchMany(ctx context.Context, ids []string, at time.Time) error {
	return r.each(ctx, ids, func(ctx context.Context, id string) error { return r.Touch(ctx, id, at) })
}

// each runs fn for every id with at most r.concurrency in flight and
// returns the first error.
func (r *Registry) each(ctx context.Context, ids []string, fn func(context.Context, string) error) error {
	if len(ids) == 1 {
		return fn(ctx, ids[0])
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.concurrency)
	for _, id := range ids {
		g.Go(func() error { return fn(gctx, id) })
	}
	return g.Wait()
}

// ListByNode returns the live records of node, if the node is live.
func (r *Registry) ListByNode(ctx context.Context, node string) ([]*storage.Record, error) {
	if node == nodesPartition {
		return nil, nil
	}
	op := fmt.Sprintf("list node %q", node)
	now := time.Now()
	ok, err := r.nodeLive(ctx, node, now)
	if err != nil || !ok {
		return nil, wrap(op, err)
	}
	var out []*storage.Record
	err = r.itemsOfNode(ctx, node, "#exp > :now", map[string]types.AttributeValue{":now": num(now.Unix())}, "",
		func(item map[string]types.AttributeValue) {
			if live(item, now) {
				out = append(out, decodeRecord(item))
			}
		})
	if err != nil {
		return nil, wrap(op, err)
	}
	return out, nil
}

// itemsOfNode calls fn for every item whose node attribute is node and
// that passes filter: a query of node-index when present, else a scan.
func (r *Registry) itemsOfNode(ctx context.Context, node, filter string, values map[string]types.AttributeValue,
	projection string, fn func(map[string]types.AttributeValue)) error {
	vals := map[string]types.AttributeValue{":node": str(node)}
	for k, v := range values {
		vals[k] = v
	}
	exprNames := make(map[string]string)
	for _, expr := range []string{filter, projection, "#n"} {
		for ph, name := range names {
			if strings.Contains(expr, ph) {
				exprNames[ph] = name
			}
		}
	}
	var proj *string
	if projection != "" {
		proj = aws.String(projection)
	}
	if r.useIndex {
		p := ddb.NewQueryPaginator(r.c, &ddb.QueryInput{
			TableName: &r.table, IndexName: aws.String(IndexName),
			KeyConditionExpression: aws.String("#n = :node"), FilterExpression: aws.String(filter),
			ProjectionExpression: proj, ExpressionAttributeNames: exprNames, ExpressionAttributeValues: vals,
		})
		return eachItem(ctx, p, func(o *ddb.QueryOutput) []map[string]types.AttributeValue { return o.Items }, fn)
	}
	p := ddb.NewScanPaginator(r.c, &ddb.ScanInput{
		TableName: &r.table, FilterExpression: aws.String("#n = :node AND " + filter),
		ProjectionExpression: proj, ExpressionAttributeNames: exprNames, ExpressionAttributeValues: vals,
		ConsistentRead: aws.Bool(true),
	})
	return eachItem(ctx, p, func(o *ddb.ScanOutput) []map[string]types.AttributeValue { return o.Items }, fn)
}

// paginator is what the SDK's Query and Scan paginators share.
type paginator[O any] interface {
	HasMorePages() bool
	NextPage(ctx context.Context, optFns ...func(*ddb.Options)) (O, error)
}

// eachItem reads every page of p and calls fn with each item.
func eachItem[O any](ctx context.Context, p paginator[O], items func(O) []map[string]types.AttributeValue,
	fn func(map[string]types.AttributeValue)) error {
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return err
		}
		for _, item := range items(page) {
			fn(item)
		}
	}
	return nil
}
