package cluster

import (
	"context"
	"fmt"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/portico-gateway/portico/storage/storagetest"
)

// keySlot agrees with Redis Cluster's CLUSTER KEYSLOT.
func TestKeySlot(t *testing.T) {
	// The example of the Redis Cluster specification.
	if got := keySlot("123456789"); got != 0x31C3%16384 {
		t.Errorf("keySlot(123456789) = %d, want %d", got, 0x31C3%16384)
	}
	addrs := storagetest.RedisCluster(t)
	c := goredis.NewClient(&goredis.Options{Addr: addrs[0]})
	t.Cleanup(func() { _ = c.Close() })
	for _, k := range []string{"", "a", "{user1000}.following", "foo{}{bar}", "foo{{bar}}zap", "p:ch:{api|dev|room:1}", "{", "}{x}"} {
		for i := range 3 {
			key := k + fmt.Sprint(i)
			want, err := c.ClusterKeySlot(context.Background(), key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if got := keySlot(key); int64(got) != want {
				t.Errorf("keySlot(%q) = %d, Redis says %d", key, got, want)
			}
		}
	}
}
