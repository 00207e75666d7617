// Command portico runs the Portico WebSocket gateway.
//
//	portico --config examples/echo/portico.yaml
//
// SIGTERM or SIGINT drains it: it stops accepting, closes every connection
// with 1001, runs $disconnect for each and exits 0.
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
	log := gateway.NewLogger(cfg.Log, os.Stderr)
	slog.SetDefault(log)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.GCPercent)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	g, err := gateway.New(ctx, cfg, gateway.WithLogger(log))
	if err != nil {
		return err
	}
	if err := g.Start(ctx); err != nil {
		return err
	}
	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", cfg.ShutdownTimeout.D())
	case serveErr = <-g.Err():
		log.Error("listener failed; shutting down", "err", serveErr)
	}
	stop()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout.D())
	defer cancel()
	if err := g.Shutdown(sctx); err != nil {
		return errors.Join(serveErr, fmt.Errorf("shutdown: %w", err))
	}
	return serveErr
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
