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

	"github.com/portico-gateway/portico/gateway"
	"github.com/portico-gateway/portico/config"
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
	flag.Parse()

	cfg, err := config.Load(*configPath)
	if err != nil {
		return err
	}
	if *check {
		fmt.Printf("%s: ok\n", *configPath)
		return nil
	}
	log := newLogger(cfg.Log)
	slog.SetDefault(log)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.GCPercent)
	}

	g, err := gateway.New(cfg, log)
	if err != nil {
		return err
	}
	if err := g.Start(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
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

func newLogger(c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
