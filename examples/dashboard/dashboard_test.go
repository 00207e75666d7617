package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gorilla/websocket"

	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/gateway"
	"github.com/portico-gateway/portico/management/client"
)

// start runs the gateway on the example's configuration (ports chosen by
// the system) and returns it with a publisher whose ticks the test drives.
func start(t *testing.T) (*gateway.Gateway, *publisher) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, err := config.Load("portico.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Management.Address = "127.0.0.1:0"
	cfg.APIs[0].Listen = "127.0.0.1:0"
	g, err := gateway.New(context.Background(), cfg, gateway.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Shutdown(context.Background()) })
	gw, err := client.New("http://"+g.ManagementAddr()+"/dev", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return g, &publisher{gw: gw, log: log, value: 500, rng: rand.New(rand.NewPCG(1, 2))}
}

type envelope struct {
	Type      string `json:"type"`
	Channel   string `json:"channel"`
	Epoch     string `json:"epoch"`
	Offset    int    `json:"offset"`
	Recovered bool   `json:"recovered"`
	Replayed  int    `json:"replayed"`
	Data      point  `json:"data"`
}

func read(t *testing.T, c *websocket.Conn) envelope {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var e envelope
	if err := c.ReadJSON(&e); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestDashboard: every page receives each published point, in order, in
// the history envelope; a page that was away recovers what it missed.
func TestDashboard(t *testing.T) {
	g, pub := start(t)
	ctx := context.Background()
	ws := "ws://" + g.APIAddr("dashboard") + "/dev"
	a, _, err := websocket.DefaultDialer.Dial(ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, _, err := websocket.DefaultDialer.Dial(ws, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := time.UnixMilli(1_800_000_000_000)
	for i := range 3 {
		res, err := pub.gw.Publish(ctx, Channel, mustPoint(t, pub, base.Add(time.Duration(i)*time.Second)), client.PublishOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Delivered != 2 {
			t.Fatalf("publish %d: delivered %d, want 2", i, res.Delivered)
		}
	}
	var epoch string
	for _, c := range []*websocket.Conn{a, b} {
		for i := range 3 {
			e := read(t, c)
			if e.Type != "portico.message" || e.Channel != Channel || e.Offset != i+1 {
				t.Fatalf("frame %d: %+v, want portico.message of %s at offset %d", i, e, Channel, i+1)
			}
			if e.Data.At != base.Add(time.Duration(i)*time.Second).UnixMilli() || e.Data.Metric != "requests_per_second" {
				t.Fatalf("frame %d: data %+v", i, e.Data)
			}
			epoch = e.Epoch
		}
	}

	// b goes away; two points are published; b comes back naming where
	// it stopped and gets them, then the recovery notice, then live ones.
	_ = b.Close()
	waitMembers(t, pub, 1)
	pub.publish(ctx, base.Add(3*time.Second))
	pub.publish(ctx, base.Add(4*time.Second))
	b, _, err = websocket.DefaultDialer.Dial(ws+"?recover="+Channel+"@"+epoch+":3", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, want := range []int{4, 5} {
		if e := read(t, b); e.Type != "portico.message" || e.Offset != want {
			t.Fatalf("replayed %+v, want offset %d", e, want)
		}
	}
	if e := read(t, b); e.Type != "portico.recovery" || !e.Recovered || e.Replayed != 2 {
		t.Fatalf("recovery notice %+v", e)
	}
	pub.publish(ctx, base.Add(5*time.Second))
	if e := read(t, b); e.Offset != 6 {
		t.Fatalf("live frame %+v, want offset 6", e)
	}
}

func mustPoint(t *testing.T, p *publisher, at time.Time) []byte {
	t.Helper()
	data, err := json.Marshal(point{Metric: "requests_per_second", At: at.UnixMilli(), Value: p.sample()})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// waitMembers waits until the channel has n members (a close reaches the
// gateway asynchronously).
func waitMembers(t *testing.T, p *publisher, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		// A publish to the channel says how many members it reached; use
		// GET @channels instead so as not to publish.
		count, err := members(p)
		if err != nil {
			t.Fatal(err)
		}
		if count == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("channel has %d members, want %d", count, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func members(p *publisher) (int, error) {
	resp, err := httpGet(strings.TrimSuffix(p.gw.Endpoint(), "/") + "/@channels/" + Channel)
	if err != nil {
		return 0, err
	}
	var m struct {
		Count int `json:"count"`
	}
	if err := json.Unmarshal(resp, &m); err != nil {
		return 0, err
	}
	return m.Count, nil
}

// TestDashboardPage opens the page in a real headless Chromium and checks
// that it connects, plots published points and draws them on the canvas.
func TestDashboardPage(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("PORTICO_REQUIRE_DEPS") != "" {
			t.Fatal("chromium is not installed (apt-get install chromium)")
		}
		t.Skip("chromium is not installed")
	}
	g, pub := start(t)
	pageSrv := httptest.NewServer(pageHandler("ws://" + g.APIAddr("dashboard") + "/dev"))
	defer pageSrv.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Headless)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	bctx, cancel := chromedp.NewContext(actx)
	defer cancel()

	// The first Run starts the browser and must not carry a timeout (it
	// would stop the browser); later steps each get their own.
	if err := chromedp.Do(bctx, chromedp.Navigate(pageSrv.URL+"/")); err != nil {
		t.Fatalf("page did not load: %v", err)
	}
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`window.dashboard && window.dashboard.status === "open"`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("page did not connect: %v", err)
	}
	waitMembers(t, pub, 1)
	base := time.Now()
	for i := range 5 {
		pub.publish(context.Background(), base.Add(time.Duration(i)*time.Second))
	}
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`window.dashboard.received >= 5`, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("page did not receive the points: %v", err)
	}
	received, err := chromedp.Run(bctx, chromedp.Evaluate[int](`window.dashboard.received`))
	if err != nil {
		t.Fatal(err)
	}
	value, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById("value").textContent`))
	if err != nil {
		t.Fatal(err)
	}
	// The line: opaque pixels of the plot's colour (#2b6cd4) on the canvas.
	painted, err := chromedp.Run(bctx, chromedp.Evaluate[int](`(() => { const c = document.getElementById("chart"); const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
		let n = 0; for (let i = 0; i < d.length; i += 4) { if (d[i] === 43 && d[i+1] === 108 && d[i+2] === 212 && d[i+3] === 255) n++; } return n; })()`))
	if err != nil {
		t.Fatal(err)
	}
	if received != 5 {
		t.Fatalf("page received %d points, want 5", received)
	}
	if _, err := strconv.Atoi(value); err != nil {
		t.Fatalf("shown value %q is not a number", value)
	}
	if painted < 10 {
		t.Fatalf("%d pixels of the line on the canvas, want a line", painted)
	}
}
