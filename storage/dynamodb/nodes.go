package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/portico-gateway/portico/storage"
)

// RegisterNode writes the node item of n, live for one node TTL.
func (r *Registry) RegisterNode(ctx context.Context, n *storage.Node) error {
	if n == nil || n.ID == "" {
		return errors.New("dynamodb: register node: node without id")
	}
	now := time.Now()
	item := map[string]types.AttributeValue{
		aID: str(nodeKeyPrefix + n.ID), aNode: str(nodesPartition), aNodeID: str(n.ID),
		aExpires: num(unixCeil(now.Add(r.nodeTTL))),
	}
	putS(item, aAddress, n.Address)
	putTime(item, aStarted, n.StartedAt)
	if _, err := r.c.PutItem(ctx, &ddb.PutItemInput{TableName: &r.table, Item: item}); err != nil {
		return wrap(fmt.Sprintf("register node %q", n.ID), err)
	}
	r.leases.Registered(n.ID, now) // records put from now on carry a fresh lease
	return nil
}

// Heartbeat extends the liveness of nodeID and, at most once per quarter
// record lease, renews the leases of its records that are half spent.
func (r *Registry) Heartbeat(ctx context.Context, nodeID string) error {
	op := fmt.Sprintf("heartbeat %q", nodeID)
	now := time.Now()
	_, err := r.c.UpdateItem(ctx, &ddb.UpdateItemInput{
		TableName:                &r.table,
		Key:                      key(nodeKeyPrefix + nodeID),
		UpdateExpression:         aws.String("SET #exp = :exp"),
		ConditionExpression:      aws.String("attribute_exists(#id) AND #exp > :now"),
		ExpressionAttributeNames: map[string]string{"#id": aID, "#exp": aExpires},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":exp": num(unixCeil(now.Add(r.nodeTTL))), ":now": num(now.Unix()),
		},
	})
	if isConditionFailed(err) {
		return storage.ErrNotFound
	}
	if err != nil {
		return wrap(op, err)
	}
	return r.leases.Renew(ctx, nodeID, now, func(ctx context.Context) error {
		return wrap(op+": renew leases", r.renew(ctx, nodeID, now))
	})
}

// renew extends the lease of node's records that have less than half of
// it left.
func (r *Registry) renew(ctx context.Context, node string, now time.Time) error {
	var ids []string
	err := r.itemsOfNode(ctx, node, "#exp > :now AND #exp < :half", map[string]types.AttributeValue{
		":now": num(now.Unix()), ":half": num(unixCeil(now.Add(r.recordTTL / 2))),
	}, "#id", func(item map[string]types.AttributeValue) {
		ids = append(ids, getS(item, aID))
	})
	if err != nil || len(ids) == 0 {
		return err
	}
	lease := num(unixCeil(now.Add(r.recordTTL)))
	return r.each(ctx, ids, func(ctx context.Context, id string) error {
		_, err := r.c.UpdateItem(ctx, &ddb.UpdateItemInput{
			TableName:                &r.table,
			Key:                      key(id),
			UpdateExpression:         aws.String("SET #exp = :lease"),
			ConditionExpression:      aws.String("#n = :node AND attribute_not_exists(#tomb)"),
			ExpressionAttributeNames: map[string]string{"#n": aNode, "#exp": aExpires, "#tomb": aTombstone},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":lease": lease, ":node": str(node),
			},
		})
		if isConditionFailed(err) {
			return nil // deleted or moved meanwhile
		}
		return err
	})
}

// Nodes returns the live nodes: a query of the "#nodes" partition of
// node-index, or a scan without the index.
func (r *Registry) Nodes(ctx context.Context) ([]*storage.Node, error) {
	now := time.Now()
	var out []*storage.Node
	collect := func(items []map[string]types.AttributeValue) {
		for _, item := range items {
			if live(item, now) {
				out = append(out, &storage.Node{
					ID: getS(item, aNodeID), Address: getS(item, aAddress), StartedAt: getTime(item, aStarted),
				})
			}
		}
	}
	vals := map[string]types.AttributeValue{":now": num(now.Unix())}
	if r.useIndex {
		vals[":nodes"] = str(nodesPartition)
		p := ddb.NewQueryPaginator(r.c, &ddb.QueryInput{
			TableName: &r.table, IndexName: aws.String(IndexName),
			KeyConditionExpression: aws.String("#n = :nodes"), FilterExpression: aws.String("#exp > :now"),
			ExpressionAttributeNames:  map[string]string{"#n": aNode, "#exp": aExpires},
			ExpressionAttributeValues: vals,
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, wrap("nodes", err)
			}
			collect(page.Items)
		}
		return out, nil
	}
	vals[":prefix"] = str(nodeKeyPrefix)
	p := ddb.NewScanPaginator(r.c, &ddb.ScanInput{
		TableName: &r.table, FilterExpression: aws.String("begins_with(#id, :prefix) AND #exp > :now"),
		ExpressionAttributeNames:  map[string]string{"#id": aID, "#exp": aExpires},
		ExpressionAttributeValues: vals, ConsistentRead: aws.Bool(true),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, wrap("nodes", err)
		}
		collect(page.Items)
	}
	return out, nil
}
