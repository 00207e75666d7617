// Package dynamodb is a connection registry in Amazon DynamoDB (or a
// DynamoDB-compatible server such as dynalite, DynamoDB Local or
// ScyllaDB Alternator, through Options.EndpointURL), shared by every
// gateway node pointed at the same table.
//
// # Table
//
// One table (default "portico_connections") with the string partition key
// connectionId holds three kinds of items:
//
//	connection  connectionId=<id>         node, api, stage, times, authorizer, expiresAt
//	tombstone   connectionId=<id>         tombstone=true, expiresAt
//	node        connectionId=node#<node>  node="#nodes", nodeId, address, startedAt, expiresAt
//
// expiresAt is in Unix seconds and is the table's TTL attribute, so
// DynamoDB deletes expired items by itself (hours later, as its TTL does);
// reads therefore check expiresAt themselves and treat an expired item as
// absent. Connection ids beginning with "node#" are refused, since that
// space holds the nodes.
//
// ListByNode and Nodes want the global secondary index node-index
// (partition key node, all attributes projected): ListByNode queries the
// node's partition, Nodes the reserved "#nodes" partition. Without the
// index both fall back to a filtered Scan of the whole table, which is
// fine for tests and small tables only. The index is detected when the
// registry starts. CreateTable creates the table with the index
// (on-demand billing; a plain table, with a warning, on servers that
// refuse the index) and enables TTL on expiresAt; servers that lack
// UpdateTimeToLive (dynalite) only cause a warning. Queries on a GSI are
// eventually consistent: on DynamoDB proper a record put a moment ago may
// be missing from ListByNode for a moment; Get uses consistent reads.
//
// # Liveness
//
// A record is visible while its node item is live (expiresAt in the
// future), so Heartbeat is one conditional UpdateItem on the node item and
// Get reads two items: the record, then its node. Records carry their own
// expiresAt as a lease (RecordTTL, ten node TTLs by default) so that
// DynamoDB's TTL reclaims a dead node's records; Heartbeat renews the
// leases that are less than half left, at most once per quarter lease, so
// a live record costs one write per few minutes rather than one per
// heartbeat. DynamoDB has no batch update, so lease renewal and TouchMany
// run conditional UpdateItems with bounded concurrency (Concurrency).
//
// # No resurrection
//
// Delete replaces the item by a tombstone living TombstoneTTL. Put is a
// conditional PutItem that succeeds only if no live tombstone is there
// (attribute_not_exists(tombstone) OR expiresAt <= now): a Put retried or
// delayed past the connection's Delete is dropped instead of bringing the
// record back, and concurrent Put/Delete end with the Delete winning once
// it has landed. Touch is an UpdateItem conditioned on the record
// existing, not being a tombstone and having an older lastActiveAt, so it
// never creates or revives an item either. Guarding Put with "absent or
// expired" instead would block the replaces Put must allow (a node putting
// its records again after a lapse, a record moving to another node) and
// still let a Put that arrives after a Delete recreate the item, so the
// guard is the tombstone. Transactions are not used (dynalite has none,
// and single-item conditions suffice).
package dynamodb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/portico-gateway/portico/storage"
)

// Defaults.
const (
	DefaultTable       = "portico_connections"
	DefaultConcurrency = 16
	// IndexName is the global secondary index on node.
	IndexName = "node-index"
)

// Options configure a Registry. Zero values take the documented defaults.
type Options struct {
	// Table is the table name. Default DefaultTable.
	Table string
	// Region overrides the region of the AWS configuration. With an
	// EndpointURL and no region anywhere, "us-east-1".
	Region string
	// EndpointURL points the client at a DynamoDB-compatible server.
	// Credentials come from the standard AWS chain (environment, shared
	// files, container and instance roles); with an EndpointURL and no
	// credentials in the environment or the shared files, static dummy
	// ones are used, as local servers accept any.
	EndpointURL string
	// CreateTable creates the table and its index when missing and waits
	// until they are active.
	CreateTable bool
	// NodeTTL is how long a node stays live after RegisterNode or
	// Heartbeat; expiry has one-second resolution. Default
	// storage.DefaultNodeTTL.
	NodeTTL time.Duration
	// RecordTTL is the lease of a stored record, renewed by the heartbeats
	// of its node. Default storage.RecordTTLFactor × NodeTTL; at least
	// 2 × NodeTTL.
	RecordTTL time.Duration
	// TombstoneTTL is how long a deleted id stays blocked against late
	// writes. Default storage.DefaultTombstoneTTL.
	TombstoneTTL time.Duration
	// Concurrency bounds the parallel requests of TouchMany and lease
	// renewal. Default DefaultConcurrency.
	Concurrency int
	// Logger receives warnings (no TTL support, no index). Default
	// slog.Default().
	Logger *slog.Logger
	// Client, when set, is used instead of one built from the fields above
	// (Region and EndpointURL are then ignored).
	Client *ddb.Client
}

// Registry is a storage.Registry in a DynamoDB table.
type Registry struct {
	c           *ddb.Client
	transport   *http.Transport // owned; nil with Options.Client
	table       string
	nodeTTL     time.Duration
	recordTTL   time.Duration
	tombTTL     time.Duration
	concurrency int
	log         *slog.Logger
	useIndex    bool

	leases storage.LeaseSchedule // when each node's record leases are renewed
}

var _ storage.Registry = (*Registry)(nil)

// New connects, checks the table (creating it if asked) and detects the
// node index. An unreachable server yields an error wrapping
// storage.ErrUnavailable.
func New(ctx context.Context, o Options) (*Registry, error) {
	r, err := newRegistry(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := r.setup(ctx, o.CreateTable); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func newRegistry(ctx context.Context, o Options) (*Registry, error) {
	if o.Table == "" {
		o.Table = DefaultTable
	}
	o.NodeTTL, o.RecordTTL, o.TombstoneTTL = storage.Lifetimes(o.NodeTTL, o.RecordTTL, o.TombstoneTTL)
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	r := &Registry{
		c: o.Client, table: o.Table, nodeTTL: o.NodeTTL, recordTTL: o.RecordTTL,
		tombTTL: o.TombstoneTTL, concurrency: o.Concurrency,
		log:    o.Logger.With("table", o.Table),
		leases: storage.LeaseSchedule{Every: o.RecordTTL / 4, Budget: o.RecordTTL / 8},
	}
	if r.c != nil {
		return r, nil
	}
	var opts []func(*config.LoadOptions) error
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("dynamodb: aws config: %w", err)
	}
	// Our own transport (a copy of the configured one, custom CA bundle
	// included), sized for Concurrency and closed by Close.
	var tr *http.Transport
	if bc, ok := cfg.HTTPClient.(*awshttp.BuildableClient); ok {
		tr = bc.GetTransport()
	} else {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	tr.MaxIdleConnsPerHost = 2 * o.Concurrency
	cfg.HTTPClient = &http.Client{Transport: tr}
	if o.EndpointURL != "" {
		if cfg.Region == "" {
			cfg.Region = "us-east-1"
		}
		if !haveCredentials(ctx, cfg) {
			cfg.Credentials = credentials.NewStaticCredentialsProvider("portico", "portico", "")
		}
	}
	if cfg.Region == "" {
		return nil, errors.New("dynamodb: no AWS region configured (set AWS_REGION or Options.Region)")
	}
	r.transport = tr
	r.c = ddb.NewFromConfig(cfg, func(co *ddb.Options) {
		if o.EndpointURL != "" {
			co.BaseEndpoint = aws.String(o.EndpointURL)
		}
	})
	return r, nil
}

// haveCredentials reports whether credentials are configured for the
// standard chain: in the environment or the shared files, and then only
// if they resolve. Instance roles alone do not count, so that a local
// setup neither waits for nor logs about the instance-metadata service.
func haveCredentials(ctx context.Context, cfg aws.Config) bool {
	configured := false
	for _, env := range []string{"AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		configured = configured || os.Getenv(env) != ""
	}
	for _, f := range []string{
		cmp.Or(os.Getenv("AWS_SHARED_CREDENTIALS_FILE"), config.DefaultSharedCredentialsFilename()),
		cmp.Or(os.Getenv("AWS_CONFIG_FILE"), config.DefaultSharedConfigFilename()),
	} {
		if _, err := os.Stat(f); err == nil {
			configured = true
		}
	}
	if !configured || cfg.Credentials == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err := cfg.Credentials.Retrieve(ctx)
	return err == nil
}

// Close releases idle connections of the client the registry built.
func (r *Registry) Close() error {
	if r.transport != nil {
		r.transport.CloseIdleConnections()
	}
	return nil
}

// setup checks the table, creates it if asked and missing, and decides
// whether the node index can be used.
func (r *Registry) setup(ctx context.Context, create bool) error {
	desc, err := r.c.DescribeTable(ctx, &ddb.DescribeTableInput{TableName: &r.table})
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) {
		if !create {
			return fmt.Errorf("dynamodb: table %q does not exist (create it or set CreateTable)", r.table)
		}
		if err := r.createTable(ctx); err != nil {
			return err
		}
		desc, err = r.describe(ctx)
	} else if err == nil && !active(desc) {
		// Another node has just created it: wait until it can be used.
		desc, err = r.describe(ctx)
	}
	if err != nil {
		return wrap(fmt.Sprintf("describe table %q", r.table), err)
	}
	for _, gsi := range desc.Table.GlobalSecondaryIndexes {
		if aws.ToString(gsi.IndexName) == IndexName && gsi.IndexStatus == types.IndexStatusActive {
			r.useIndex = true
		}
	}
	if !r.useIndex {
		r.log.Warn("dynamodb: no active index " + IndexName + ": ListByNode and Nodes scan the whole table")
	}
	return nil
}

func (r *Registry) createTable(ctx context.Context) error {
	in := &ddb.CreateTableInput{
		TableName:   &r.table,
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(aID), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(aNode), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String(aID), KeyType: types.KeyTypeHash}},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName:  aws.String(IndexName),
			KeySchema:  []types.KeySchemaElement{{AttributeName: aws.String(aNode), KeyType: types.KeyTypeHash}},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeAll},
		}},
	}
	_, err := r.c.CreateTable(ctx, in)
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) && !unavailable(err) {
		// A compatible server without secondary indexes: a plain table.
		r.log.Warn("dynamodb: creating the table with "+IndexName+" failed; creating it without", "err", err)
		in.GlobalSecondaryIndexes = nil
		in.AttributeDefinitions = in.AttributeDefinitions[:1]
		_, err = r.c.CreateTable(ctx, in)
	}
	if err != nil && !errors.As(err, &inUse) { // another node may be creating it
		return wrap(fmt.Sprintf("create table %q", r.table), err)
	}
	if _, err := r.describe(ctx); err != nil {
		return wrap(fmt.Sprintf("wait for table %q", r.table), err)
	}
	_, err = r.c.UpdateTimeToLive(ctx, &ddb.UpdateTimeToLiveInput{
		TableName: &r.table,
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(aExpires), Enabled: aws.Bool(true),
		},
	})
	if err != nil {
		r.log.Warn("dynamodb: enabling TTL failed; expired items stay until deleted, reads still ignore them",
			"attribute", aExpires, "err", err)
	}
	return nil
}

// active reports whether the table and its indexes are active.
func active(desc *ddb.DescribeTableOutput) bool {
	ready := desc.Table.TableStatus == types.TableStatusActive
	for _, gsi := range desc.Table.GlobalSecondaryIndexes {
		ready = ready && gsi.IndexStatus == types.IndexStatusActive
	}
	return ready
}

// describe waits until the table and its indexes are active.
func (r *Registry) describe(ctx context.Context) (*ddb.DescribeTableOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	delay := 100 * time.Millisecond
	for {
		desc, err := r.c.DescribeTable(ctx, &ddb.DescribeTableInput{TableName: &r.table})
		if err != nil {
			return nil, err
		}
		if active(desc) {
			return desc, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// unavailable tells an unreachable or throttling server from errors in
// the request itself.
func unavailable(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var params *smithy.InvalidParamsError
	if errors.As(err, &params) {
		return false
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "ProvisionedThroughputExceededException", "ThrottlingException",
			"RequestLimitExceeded", "InternalServerError", "ServiceUnavailable":
			return true
		}
		return apiErr.ErrorFault() == smithy.FaultServer
	}
	return true // connection refused, timeouts, exhausted retries
}

// wrap adds context to err and marks it storage.ErrUnavailable when the
// server could not be reached.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if unavailable(err) {
		return fmt.Errorf("dynamodb: %s: %w: %w", op, storage.ErrUnavailable, err)
	}
	return fmt.Errorf("dynamodb: %s: %w", op, err)
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}
