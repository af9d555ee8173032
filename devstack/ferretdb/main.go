// Command ferretdb-embedded runs FerretDB 1.24 as a MongoDB-protocol server for local development
// and tests, on PostgreSQL (the default: filters and indexes are pushed down) or SQLite.
//
// Embedding the ferretdb package (instead of `go install .../cmd/ferretdb`)
// avoids the missing build/version/version.txt panic of the upstream command
// and skips its version check and telemetry.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dataDir := flag.String("data", "", "directory for FerretDB's state (and SQLite databases); created if missing")
	handler := flag.String("handler", "postgresql", "storage backend: postgresql or sqlite")
	postgresURL := flag.String("postgresql-url", "", "PostgreSQL URL for the postgresql handler")
	logLevel := flag.String("log-level", "warn", "log level: debug, info, warn, error")
	flag.Parse()

	if *dataDir == "" {
		log.Fatal("-data is required")
	}
	abs, err := filepath.Abs(*dataDir)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		log.Fatal(err)
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		log.Fatalf("bad -log-level: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	// Writes to one collection run one at a time inside FerretDB (devstack's patch 0004), so that
	// single-document updates are atomic as on MongoDB.
	config := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: *listen},
		Logger:   logger,
		Handler:  *handler,
	}
	switch *handler {
	case "postgresql":
		if *postgresURL == "" {
			log.Fatal("-postgresql-url is required with -handler postgresql")
		}
		config.PostgreSQLURL = *postgresURL
	case "sqlite":
		// The SQLite URL must name an existing directory and end with a slash.
		config.SQLiteURL = "file:" + abs + "/"
	default:
		log.Fatalf("bad -handler %q: use postgresql or sqlite", *handler)
	}
	f, err := ferretdb.New(config)
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Fprintf(os.Stderr, "ferretdb (%s) listening on %s (writes serialised per collection), data in %s\n", *handler, *listen, abs)
	f.Run(ctx)
}
