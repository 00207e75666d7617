package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// The redis-echo pair measures the floor under a cross-node @connections
// call through the Redis relay: the caller PUBLISHes a request on one
// channel and waits for the PUBLISH reply, a second process reads the
// request from its subscription and PUBLISHes the answer back, and the
// caller reads it from its own subscription. Those are the two Redis hops
// and the go-redis work of a relayed call, without the gateways' own work
// (HTTP, the frame to the socket). A cross-node post can be no faster than
// a local post plus this round trip.

// redisEchoChannels are the request and answer channels under prefix.
func redisEchoChannels(prefix string) (req, resp string) {
	return prefix + "redis-echo:req", prefix + "redis-echo:resp"
}

func redisEchoClient(addr string) (*goredis.Client, error) {
	if err := CheckLoopbackAddr(addr); err != nil {
		return nil, err
	}
	return goredis.NewClient(&goredis.Options{Addr: addr}), nil
}

// ServeRedisEcho answers every request on prefix's request channel with
// the same payload on its answer channel, until ctx ends or duration
// passes. ready is called once subscribed.
func ServeRedisEcho(ctx context.Context, addr, prefix string, duration time.Duration, ready func()) error {
	if duration <= 0 || duration > time.Hour {
		return errors.New("redis-echo: --duration must be between 1s and 1h (it stops by itself)")
	}
	client, err := redisEchoClient(addr)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	req, resp := redisEchoChannels(prefix)
	sub := client.Subscribe(ctx, req)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		return fmt.Errorf("redis-echo: subscribing: %w", err)
	}
	ready()
	for {
		m, err := sub.ReceiveTimeout(ctx, time.Second)
		if ctx.Err() != nil {
			return nil
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		if err != nil {
			return fmt.Errorf("redis-echo: reading: %w", err)
		}
		if msg, ok := m.(*goredis.Message); ok {
			if err := client.Publish(ctx, resp, msg.Payload).Err(); err != nil {
				return fmt.Errorf("redis-echo: answering: %w", err)
			}
		}
	}
}

// RedisEcho sends requests to a ServeRedisEcho process at rate a second
// (one in flight at a time) for duration and returns the round trips, from
// before the PUBLISH to the answer read from the subscription.
func RedisEcho(ctx context.Context, addr, prefix string, rate float64, duration time.Duration) (Latency, error) {
	if duration <= 0 || duration > 10*time.Minute {
		return Latency{}, errors.New("redis-echo: --duration must be between 1s and 10m")
	}
	if rate <= 0 || rate > 100_000 {
		return Latency{}, errors.New("redis-echo: --rate must be between 1 and 100000")
	}
	client, err := redisEchoClient(addr)
	if err != nil {
		return Latency{}, err
	}
	defer client.Close()
	req, resp := redisEchoChannels(prefix)
	sub := client.Subscribe(ctx, resp)
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		return Latency{}, fmt.Errorf("redis-echo: subscribing: %w", err)
	}
	// The subscription is read on its own goroutine and handed over, as
	// the relay's serve loop hands answers to the waiting call.
	answers := make(chan string, 1)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	defer func() { stop(); _ = sub.Close(); <-done }()
	go func() {
		defer close(done)
		for {
			m, err := sub.ReceiveTimeout(rctx, time.Second)
			if rctx.Err() != nil {
				return
			}
			if msg, ok := m.(*goredis.Message); ok && err == nil {
				select {
				case answers <- msg.Payload:
				case <-rctx.Done():
					return
				}
			}
		}
	}()
	h := NewHist()
	// Paced by schedule, not by a ticker: a late wake-up is caught up with
	// by sending at once, so the rate holds on average.
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	end := start.Add(duration)
	wait := time.NewTimer(0)
	defer wait.Stop()
	for seq := 0; ; seq++ {
		next := start.Add(time.Duration(seq) * interval)
		if !next.Before(end) {
			return h.Latency(), nil
		}
		if d := time.Until(next); d > 0 {
			wait.Reset(d)
			select {
			case <-wait.C:
			case <-ctx.Done():
				return h.Latency(), ctx.Err()
			}
		}
		payload := strconv.Itoa(seq)
		t0 := time.Now()
		n, err := client.Publish(ctx, req, payload).Result()
		if err != nil {
			return h.Latency(), fmt.Errorf("redis-echo: publishing: %w", err)
		}
		if n == 0 {
			return h.Latency(), errors.New("redis-echo: nobody serves the requests (start portico-load redis-echo --serve first)")
		}
		for got := ""; got != payload; {
			select {
			case got = <-answers:
			case <-time.After(5 * time.Second):
				return h.Latency(), fmt.Errorf("redis-echo: request %d not answered within 5s", seq)
			}
		}
		h.Record(time.Since(t0))
	}
}
