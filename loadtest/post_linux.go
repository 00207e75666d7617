//go:build linux

package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"

	"github.com/portico-gateway/portico/loadtest/wsclient"
	"github.com/portico-gateway/portico/management/client"
)

// whoamiTimeout bounds learning the connection ids.
const whoamiTimeout = 10 * time.Second

// post pushes messages to connections through the management API:
// POST {management}/{stage}/@connections/{id} with a body
// "<seq>-<send time>", timed twice: the HTTP answer, and the arrival of
// the body on the connection's socket. Posts go to the connections in
// turn, so a run of at least as many posts as connections reaches each.
type post struct {
	r          *runner
	ids        []atomic.Pointer[string] // by Conn.ID: what whoami answered
	got        []atomic.Bool            // by Conn.ID: a post arrived
	delivered  atomic.Int64
	unexpected atomic.Int64
	delivery   *Hist
	firstOdd   atomic.Pointer[string]
}

func (r *runner) newPost() *post {
	p := &post{r: r, ids: make([]atomic.Pointer[string], r.o.Connections),
		got: make([]atomic.Bool, r.o.Connections), delivery: NewHist()}
	r.onMessage = p.onMessage
	return p
}

// onMessage reads a whoami answer or a posted message.
func (p *post) onMessage(c *wsclient.Conn, msg []byte) {
	if len(msg) > 0 && msg[0] == '{' {
		if id := gjson.GetBytes(msg, "connectionId"); id.Type == gjson.String && id.Str != "" {
			s := id.Str
			p.ids[c.ID].Store(&s)
			return
		}
	}
	if _, ns, ok := parseStamp(msg); ok && ns >= 0 {
		p.delivery.Record(p.r.since(ns))
		p.delivered.Add(1)
		p.got[c.ID].Store(true)
		return
	}
	p.unexpected.Add(1)
	if p.firstOdd.Load() == nil {
		s := clip(string(msg), 200)
		p.firstOdd.CompareAndSwap(nil, &s)
	}
}

// learnIDs asks every connection who it is and waits for the answers.
func (p *post) learnIDs(ctx context.Context) []string {
	conns := p.r.conns()
	ask := []byte(`{"action":"` + p.r.o.Whoami + `"}`)
	for _, c := range conns {
		_ = c.SendText(ask)
	}
	count := func() int {
		n := 0
		for _, c := range conns {
			if p.ids[c.ID].Load() != nil {
				n++
			}
		}
		return n
	}
	stop := p.r.progress(func() string { return fmt.Sprintf("post: %d of %d connection ids known", count(), len(conns)) })
	waitUntil(ctx, whoamiTimeout, func() bool { return count() == len(conns) })
	stop()
	ids := make([]string, 0, len(conns))
	for _, c := range conns {
		if id := p.ids[c.ID].Load(); id != nil {
			ids = append(ids, *id)
		}
	}
	return ids
}

// run learns the ids, then posts from Clients goroutines for Duration.
func (p *post) run(ctx context.Context) error {
	o, s := p.r.o, p.r.sum
	base := o.managementURL() + "/@connections/"
	res := &PostResult{Management: o.managementURL(), Clients: o.Clients, PostRate: o.PostRate, Statuses: map[string]int64{}}
	s.Post = res
	ids := p.learnIDs(ctx)
	res.IDs = len(ids)
	res.MissingIDs = s.Connect.Connected - len(ids)
	if res.MissingIDs > 0 {
		s.problem("%d connections did not answer {\"action\":%q} with their connectionId within %v", res.MissingIDs, o.Whoami, whoamiTimeout)
	}
	if len(ids) == 0 {
		return nil
	}

	mu0, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("management URL %q: %w", base, err)
	}
	var signer *postSigner
	if o.AccessKey != "" {
		signer = newPostSigner(o.AccessKey, o.SecretKey, o.Region)
		res.Signed = "SigV4 " + o.Region
	}
	path, rawPath := mu0.Path, mu0.EscapedPath()
	httpHist := NewHist()
	var posts, ok200 atomic.Int64
	var seq atomic.Uint64
	var mu sync.Mutex // guards res.Statuses and res.FirstError
	start := time.Now()
	deadline := start.Add(o.Duration)
	stop := p.r.progress(func() string {
		return fmt.Sprintf("post: %d posts, %.0f/s, %d delivered", posts.Load(), float64(posts.Load())/time.Since(start).Seconds(), p.delivered.Load())
	})
	var wg sync.WaitGroup
	for k := range o.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses := map[string]int64{}
			var firstErr string
			body := make([]byte, 0, 64+o.MessageBytes)
			var extra []byte // the signature's header lines, reused
			ka := newKeepAlive(mu0.Host, 10*time.Second)
			defer ka.close()
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				if o.PostRate > 0 {
					waitTurn(ctx, start, i, o.Clients, k, o.PostRate)
				}
				n := seq.Add(1)
				id := ids[(n-1)%uint64(len(ids))]
				body = appendStamp(body[:0], n, p.r.stamp(), o.MessageBytes)
				target := rawPath + client.EscapeConnectionID(id)
				extra = extra[:0]
				if signer != nil {
					// Each call signed afresh, as an SDK signs it; the
					// HTTP latency starts after the signing.
					var err error
					if extra, err = signer.sign(ctx, extra, mu0.Host, path, rawPath, id, target, body, time.Now()); err != nil {
						statuses["error"]++
						firstErr = err.Error()
						continue
					}
				}
				t0 := time.Now()
				status, answer, err := ka.post(target, body, extra)
				posts.Add(1)
				if err != nil {
					if ctx.Err() == nil {
						statuses["error"]++
						if firstErr == "" {
							firstErr = err.Error()
						}
					}
					continue
				}
				httpHist.Record(time.Since(t0))
				statuses[strconv.Itoa(status)]++
				if status == http.StatusOK {
					ok200.Add(1)
				} else if firstErr == "" {
					firstErr = fmt.Sprintf("HTTP %d: %s", status, clip(string(answer), 150))
				}
			}
			mu.Lock()
			for k, v := range statuses {
				res.Statuses[k] += v
			}
			if res.FirstError == "" {
				res.FirstError = firstErr
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stop()
	want := ok200.Load()
	waitUntil(ctx, o.Drain, func() bool { return p.delivered.Load() >= want })

	res.Posts = posts.Load()
	res.PerSecond = float64(res.Posts) / elapsed.Seconds()
	res.HTTP = httpHist.Latency()
	res.Delivered = p.delivered.Load()
	for i := range p.got {
		if p.got[i].Load() {
			res.Reached++
		}
	}
	res.Lost = max(want-res.Delivered, 0)
	res.Unexpected = p.unexpected.Load()
	res.Delivery = p.delivery.Latency()
	s.Seconds = elapsed.Seconds()
	if n := res.Posts - want; n > 0 {
		s.problem("%d of %d posts were not answered 200 (first: %s)", n, res.Posts, res.FirstError)
	}
	if res.Lost > 0 {
		s.problem("%d posts answered 200 never reached their connection", res.Lost)
	}
	if res.Unexpected > 0 {
		p := p.firstOdd.Load()
		s.problem("%d unexpected messages arrived, first: %s", res.Unexpected, clip(*p, 100))
	}
	return nil
}
