// Command portico runs the Portico WebSocket gateway.
//
//	portico --config examples/echo/portico.yaml
//
// SIGTERM or SIGINT drains it: it stops accepting, closes every connection
// with 1001, runs $disconnect for each and exits 0. SIGHUP reloads the
// configuration file without dropping a connection (gateway.Reload): a
// bad file is logged and changes nothing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/portico-gateway/portico/config"
	"github.com/portico-gateway/portico/gateway"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "portico:", err)
		os.Exit(1)
	}
}

func run() error {
	configPath := flag.String("config", "portico.yaml", "path of the YAML configuration file")
	check := flag.Bool("check", false, "validate the configuration and exit")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println("portico", version())
		return nil
	}
	if flag.NArg() > 0 {
		// A forgotten --config would otherwise start the default file.
		return fmt.Errorf("unexpected argument %q: give the configuration file with --config %s", flag.Arg(0), flag.Arg(0))
	}

	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	if *check {
		fmt.Printf("%s: ok\n", *configPath)
		return nil
	}
	log, level := gateway.NewLevelLogger(cfg.Log, os.Stderr)
	slog.SetDefault(log)
	opts := []gateway.Option{gateway.WithLogger(log), gateway.WithLogLevel(level)}
	if os.Getenv("GOGC") == "" {
		// The gateway sets gcPercent when it starts and adapts it.
		opts = append(opts, gateway.WithGCTuning())
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	g, err := gateway.New(ctx, cfg, opts...)
	if err != nil {
		return err
	}
	if err := g.Start(ctx); err != nil {
		return err
	}
	stopReloads := reloadOnHangup(ctx, g)
	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", g.ShutdownTimeout())
	case serveErr = <-g.Err():
		log.Error("listener failed; shutting down", "err", serveErr)
	}
	stop()
	stopReloads()
	sctx, cancel := context.WithTimeout(context.Background(), g.ShutdownTimeout())
	defer cancel()
	if err := g.Shutdown(sctx); err != nil {
		return errors.Join(serveErr, fmt.Errorf("shutdown: %w", err))
	}
	return serveErr
}

// reloadOnHangup reloads the configuration file on every SIGHUP until
// ctx ends or the returned function is called (which waits for a reload
// under way). Reload logs what it applied, what needs a restart and why
// a file was refused.
func reloadOnHangup(ctx context.Context, g *gateway.Gateway) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_, _ = g.ReloadFile(ctx)
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}

// version is the module version the binary was built from ("devel" for
// a build from a work tree) and, when known, its VCS revision.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" {
			rev := s.Value
			if len(rev) > 12 {
				rev = rev[:12]
			}
			v += " " + rev
		}
		if s.Key == "vcs.modified" && s.Value == "true" {
			v += "-dirty"
		}
	}
	return v
}
