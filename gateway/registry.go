package gateway

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/storage"
	"github.com/portico-gateway/portico/storage/dynamodb"
	"github.com/portico-gateway/portico/storage/memory"
	"github.com/portico-gateway/portico/storage/redis"
)

// openRegistry builds the configured connection registry.
func openRegistry(ctx context.Context, c config.Storage, log *slog.Logger) (storage.Registry, error) {
	switch c.Type {
	case "", "memory":
		return memory.New(), nil
	case "redis":
		r, err := redis.New(ctx, redis.Options{
			Addrs: c.Redis.Addrs, Cluster: c.Redis.Cluster, Password: c.Redis.Password,
			DB: c.Redis.DB, TLS: c.Redis.TLS, Prefix: c.Redis.Prefix, NodeTTL: c.NodeTTL.D(),
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: redis registry: %w", err)
		}
		return r, nil
	case "dynamodb":
		r, err := dynamodb.New(ctx, dynamodb.Options{
			Table: c.DynamoDB.Table, Region: c.DynamoDB.Region, EndpointURL: c.DynamoDB.Endpoint,
			CreateTable: c.DynamoDB.CreateTable, NodeTTL: c.NodeTTL.D(), Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: dynamodb registry: %w", err)
		}
		return r, nil
	}
	return nil, fmt.Errorf("gateway: storage type %q is not supported", c.Type)
}
