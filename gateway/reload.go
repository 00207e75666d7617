package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portico-gateway/portico/config"
)

// Live configuration reload (SIGHUP, POST /admin/reload).
//
// A reload builds every API's new route table (routes, integrations,
// authorizers, stage variables, throttles) from the new file before it
// swaps any, then swaps them all: a file that fails anywhere changes
// nothing. What cannot change without a restart (a listener, the
// storage backend, the connection mode, an API added or removed...) is
// kept as it runs and named in the Result.
//
// Every authorizer is rebuilt, changed or not: its result cache starts
// empty. JWKS key sets are kept (cached by URL, shared by every JWT
// authorizer). Every route and stage token bucket is rebuilt full. Open
// connections keep their stage, their message bucket and the API key
// they connected with; usage-plan quotas and the gateway-wide bucket
// are untouched.

// Result is what a Reload did.
type Result struct {
	// Applied are the key paths whose changes took effect, e.g.
	// apis[0].routes.sendmessage, log.level.
	Applied []string `json:"applied"`
	// NotApplied name, as "file:line: key: reason", each change that
	// only a restart applies; the running value stays.
	NotApplied []string `json:"notApplied"`
}

// reloadState is what Reload keeps between reloads.
type reloadState struct {
	mu sync.Mutex // one reload at a time
	// running is the configuration being served: the file the gateway
	// started with, with what reloads applied.
	running *config.File
	// level is the logger's level; nil when the logger came WithLogger
	// without WithLogLevel (log.level then needs a restart).
	level *slog.LevelVar
}

// WithLogLevel gives New the level of the logger given WithLogger (from
// NewLevelLogger), so that a Reload changes it (log.level).
func WithLogLevel(level *slog.LevelVar) Option { return func(g *Gateway) { g.reload.level = level } }

// ErrNoFile is returned by ReloadFile when the configuration was built
// in code rather than read from a file.
var ErrNoFile = errors.New("gateway: reload: the configuration was not read from a file")

// ReloadFile reads the file the gateway was started from again and
// Reloads it. A file that does not load (file:line: key: reason)
// changes nothing.
func (g *Gateway) ReloadFile(ctx context.Context) (Result, error) {
	path := g.cfg.Path()
	if path == "" {
		return Result{}, ErrNoFile
	}
	next, err := config.Load(path)
	if err != nil {
		g.log.Error("configuration reload rejected; the running configuration stays", "err", err)
		return Result{}, err
	}
	return g.Reload(ctx, next)
}

// Reload applies next, a defaulted and validated configuration (what
// config.Load returns), without dropping a connection: new messages,
// connections and requests meet next's routes, integrations,
// authorizers, throttles, stage variables and log level; what is in
// flight finishes as it started. Changes only a restart applies are
// named in Result.NotApplied and logged. On an error (a problem
// reported as next's "file:line: key: reason") nothing changes.
func (g *Gateway) Reload(ctx context.Context, next *config.File) (Result, error) {
	if next == nil {
		return Result{}, errors.New("gateway: reload: no configuration")
	}
	g.reload.mu.Lock()
	defer g.reload.mu.Unlock()
	p := planReload(g.reload.running, next, g.reload.level != nil)

	// Build everything first: a problem in any API changes nothing.
	var commits []func()
	for _, a := range g.apis {
		i, api := p.api(a.name)
		if api == nil {
			continue // removed from the file: keeps serving what it had
		}
		rapi, err := g.routingAPI(next, api, i)
		if err != nil {
			return Result{}, g.rejected(err)
		}
		limits, err := g.throttle.NewAPI(throttleAPI(api))
		if err != nil {
			return Result{}, g.rejected(fmt.Errorf("gateway: api %q: %w", api.Name, err))
		}
		commit, err := a.router.Prepare(rapi, limits)
		if err != nil {
			return Result{}, g.rejected(fmt.Errorf("gateway: %w", err))
		}
		commits = append(commits, commit)
	}
	for _, a := range g.rests {
		i, api := p.api(a.name)
		if api == nil {
			continue
		}
		ra, err := g.restAPI(next, api, i)
		if err != nil {
			return Result{}, g.rejected(err)
		}
		limits, err := g.throttle.NewAPI(throttleAPI(api))
		if err != nil {
			return Result{}, g.rejected(fmt.Errorf("gateway: api %q: %w", api.Name, err))
		}
		commit, err := a.h.Prepare(g.restOptions(ra, limits))
		if err != nil {
			return Result{}, g.rejected(fmt.Errorf("gateway: %w", err))
		}
		commits = append(commits, commit)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("gateway: reload: %w", err)
	}
	for _, commit := range commits {
		commit()
	}
	if p.level != "" {
		_ = g.reload.level.UnmarshalText([]byte(p.level)) // validated
	}
	g.reload.running = p.running
	res := Result{Applied: p.applied, NotApplied: p.notApplied}
	g.log.Info("configuration reloaded", "file", next.Path(), "applied", len(res.Applied), "notApplied", len(res.NotApplied))
	for _, k := range res.Applied {
		g.log.Debug("configuration reload: applied", "key", k)
	}
	for _, m := range res.NotApplied {
		g.log.Warn("configuration reload: not applied until a restart", "change", m)
	}
	return res, nil
}

func (g *Gateway) rejected(err error) error {
	g.log.Error("configuration reload rejected; the running configuration stays", "err", err)
	return err
}

// ShutdownTimeout is shutdownTimeout of the running configuration (a
// reload changes it).
func (g *Gateway) ShutdownTimeout() time.Duration {
	g.reload.mu.Lock()
	defer g.reload.mu.Unlock()
	return g.reload.running.ShutdownTimeout.D()
}

// Keys of an API a reload applies; every other key of an API needs a
// restart. stages is applied but for adding or removing a stage.
var liveAPIKeys = map[string]bool{
	"routes": true, "authorizers": true, "stages": true, "routeSelectionExpression": true,
	"apiKeySelectionExpression": true, "domainName": true, "cors": true, "region": true, "accountId": true,
}

// Keys of an API's limits a reload applies (message buckets: to
// connections opened after it).
var liveLimitKeys = map[string]bool{"messageRateLimit": true, "messageBurstLimit": true, "maxRequestBytes": true}

// Top-level keys a reload applies (log.level is handled on its own).
var liveTopKeys = map[string]bool{"shutdownTimeout": true}

const needsRestart = "changed, but only a restart applies it; the running value stays"

// reloadPlan is what a reload changes, worked out from the running
// configuration and the new file.
type reloadPlan struct {
	running             *config.File   // the configuration once the reload is done
	index               map[string]int // API name → its index in the new file
	applied, notApplied []string
	level               string // the new log.level; "": unchanged
}

// api returns the running API named name once the reload is done and
// its index in the new file; nil when the new file lacks it.
func (p *reloadPlan) api(name string) (int, *config.API) {
	i, ok := p.index[name]
	if !ok {
		return 0, nil
	}
	for j := range p.running.APIs {
		if p.running.APIs[j].Name == name {
			return i, &p.running.APIs[j]
		}
	}
	return 0, nil
}

func planReload(old, next *config.File, canSetLevel bool) *reloadPlan {
	run := *old
	run.APIs = slices.Clone(old.APIs)
	p := &reloadPlan{running: &run, index: map[string]int{}, applied: []string{}, notApplied: []string{}}
	restart := func(key, reason string) { p.notApplied = append(p.notApplied, next.Problem(key, "%s", reason).Error()) }

	// Top-level keys, but apis.
	ov, nv, rv := reflect.ValueOf(old).Elem(), reflect.ValueOf(next).Elem(), reflect.ValueOf(&run).Elem()
	for f := range ov.NumField() {
		name := yamlName(ov.Type().Field(f))
		switch {
		case name == "" || name == "apis":
			continue
		case name == "log":
			if old.Log.Level != next.Log.Level {
				if canSetLevel {
					p.level = next.Log.Level
					run.Log.Level = next.Log.Level
					p.applied = append(p.applied, "log.level")
				} else {
					restart("log.level", "changed, but the logger was built outside the gateway (WithLogger without WithLogLevel); the running level stays")
				}
			}
			if old.Log.Format != next.Log.Format {
				restart("log.format", needsRestart)
			}
			continue
		}
		changed := changedKeys(name, ov.Field(f), nv.Field(f))
		if len(changed) == 0 {
			continue
		}
		if liveTopKeys[name] {
			rv.Field(f).Set(nv.Field(f))
			p.applied = append(p.applied, changed...)
			continue
		}
		for _, k := range changed {
			restart(k, needsRestart)
		}
	}

	// APIs, matched by name.
	for i := range next.APIs {
		p.index[next.APIs[i].Name] = i
	}
	for j := range old.APIs {
		if _, ok := p.index[old.APIs[j].Name]; !ok {
			restart("apis", fmt.Sprintf("API %q was removed, but it keeps serving until a restart", old.APIs[j].Name))
		}
	}
	for i := range next.APIs {
		na := &next.APIs[i]
		key := "apis[" + strconv.Itoa(i) + "]"
		j := slices.IndexFunc(run.APIs, func(a config.API) bool { return a.Name == na.Name })
		if j < 0 {
			restart(key, fmt.Sprintf("API %q is new: it starts at a restart", na.Name))
			delete(p.index, na.Name)
			continue
		}
		oa := &old.APIs[j]
		if oa.Protocol != na.Protocol {
			restart(key+".protocol", needsRestart+" (nothing else of this API is applied)")
			delete(p.index, na.Name)
			continue
		}
		p.planAPI(key, oa, na, &run.APIs[j], restart)
	}
	sort.Strings(p.applied)
	return p
}

// planAPI works out the changes of one API: m (a copy of old) takes
// the live ones.
func (p *reloadPlan) planAPI(key string, old, next, m *config.API, restart func(key, reason string)) {
	ov, nv, mv := reflect.ValueOf(old).Elem(), reflect.ValueOf(next).Elem(), reflect.ValueOf(m).Elem()
	for f := range ov.NumField() {
		name := yamlName(ov.Type().Field(f))
		if name == "" {
			continue
		}
		fkey := key + "." + name
		switch {
		case name == "stages":
			p.planStages(fkey, old, next, m, restart)
		case name == "limits":
			lo, ln, lm := ov.Field(f), nv.Field(f), mv.Field(f)
			for g := range lo.NumField() {
				lname := yamlName(lo.Type().Field(g))
				changed := changedKeys(fkey+"."+lname, lo.Field(g), ln.Field(g))
				if len(changed) == 0 {
					continue
				}
				if liveLimitKeys[lname] {
					lm.Field(g).Set(ln.Field(g))
					p.applied = append(p.applied, changed...)
					continue
				}
				for _, k := range changed {
					restart(k, needsRestart)
				}
			}
		default:
			changed := changedKeys(fkey, ov.Field(f), nv.Field(f))
			if len(changed) == 0 {
				continue
			}
			if liveAPIKeys[name] {
				mv.Field(f).Set(nv.Field(f))
				p.applied = append(p.applied, changed...)
				continue
			}
			for _, k := range changed {
				restart(k, needsRestart)
			}
		}
	}
}

// planStages applies the new definitions of the stages old and next
// share. Adding or removing a stage needs a restart (the management
// listener, channels and @connections know the stage names): a removed
// stage keeps its running definition, an added one waits.
func (p *reloadPlan) planStages(key string, old, next, m *config.API, restart func(key, reason string)) {
	m.Stages = make([]config.Stage, len(old.Stages))
	for i, st := range old.Stages {
		m.Stages[i] = st
		k := slices.IndexFunc(next.Stages, func(s config.Stage) bool { return s.Name == st.Name })
		if k < 0 {
			restart(key, fmt.Sprintf("stage %q was removed, but it keeps serving until a restart", st.Name))
			continue
		}
		m.Stages[i] = next.Stages[k]
		p.applied = append(p.applied, changedKeys(key+"["+strconv.Itoa(k)+"]", reflect.ValueOf(st), reflect.ValueOf(next.Stages[k]))...)
	}
	for k, st := range next.Stages {
		if !slices.ContainsFunc(old.Stages, func(s config.Stage) bool { return s.Name == st.Name }) {
			restart(key+"["+strconv.Itoa(k)+"]", fmt.Sprintf("stage %q is new: clients reach it after a restart", st.Name))
		}
	}
}

// changedKeys lists the key paths under key whose values differ between
// a and b: structs and string-keyed maps are compared key by key, any
// other value whole.
func changedKeys(key string, a, b reflect.Value) []string {
	if reflect.DeepEqual(a.Interface(), b.Interface()) {
		return nil
	}
	switch a.Kind() {
	case reflect.Pointer:
		if !a.IsNil() && !b.IsNil() {
			return changedKeys(key, a.Elem(), b.Elem())
		}
	case reflect.Struct:
		var out []string
		for f := range a.NumField() {
			name := yamlName(a.Type().Field(f))
			if name == "" {
				continue
			}
			out = append(out, changedKeys(key+"."+name, a.Field(f), b.Field(f))...)
		}
		return out
	case reflect.Map:
		if a.Type().Key().Kind() != reflect.String || a.Len() == 0 || b.Len() == 0 {
			break
		}
		names := map[string]bool{}
		for _, k := range a.MapKeys() {
			names[k.String()] = true
		}
		for _, k := range b.MapKeys() {
			names[k.String()] = true
		}
		sorted := make([]string, 0, len(names))
		for n := range names {
			sorted = append(sorted, n)
		}
		sort.Strings(sorted)
		var out []string
		for _, n := range sorted {
			k := reflect.ValueOf(n).Convert(a.Type().Key())
			av, bv := a.MapIndex(k), b.MapIndex(k)
			switch {
			case !av.IsValid() || !bv.IsValid():
				out = append(out, key+"."+n)
			default:
				out = append(out, changedKeys(key+"."+n, av, bv)...)
			}
		}
		return out
	}
	return []string{key}
}

// yamlName is the YAML key of an exported struct field; "" for others.
func yamlName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}
