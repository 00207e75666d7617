package gateway

import (
	"errors"
	"fmt"

	"github.com/portico-gateway/portico/accesslog"
	"github.com/portico-gateway/portico/config"
)

// stageAccessLog is the access log of one stage: its format over the
// writer of its destination (one writer per destination, shared by the
// stages naming it). nil when the stage keeps none.
func (g *Gateway) stageAccessLog(st config.Stage) (*accesslog.Logger, error) {
	s := st.AccessLogSettings
	if s == nil {
		return nil, nil
	}
	t, err := accesslog.Compile(s.Format)
	if err != nil {
		return nil, fmt.Errorf("gateway: stage %q: accessLogSettings.format: %w", st.Name, err)
	}
	w := g.accessLogs[s.Destination]
	if w == nil {
		w, err = accesslog.Open(accesslog.Options{
			Destination: s.Destination,
			Lines:       g.metrics.AccessLogLines.WithLabelValues(s.Destination),
			Dropped:     g.metrics.AccessLogDropped.WithLabelValues(s.Destination),
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: stage %q: accessLogSettings.destination: %w", st.Name, err)
		}
		if g.accessLogs == nil {
			g.accessLogs = map[string]*accesslog.Writer{}
		}
		g.accessLogs[s.Destination] = w
	}
	return accesslog.NewLogger(t, w), nil
}

// closeAccessLogs writes what the access log writers hold and closes
// them; Shutdown calls it once nothing logs any more.
func (g *Gateway) closeAccessLogs() error {
	var errs []error
	for _, w := range g.accessLogs {
		if err := w.Close(); err != nil {
			errs = append(errs, fmt.Errorf("gateway: access log: %w", err))
		}
	}
	return errors.Join(errs...)
}
