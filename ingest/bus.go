// Package ingest is reelfeed's write path: it validates what the app
// reports (behaviour events, videos, users), makes it durable in NATS
// JetStream before answering, and consumes the streams to update the
// profile and feature stores and every replica's catalog.
package ingest

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// BusConfig says which NATS to use and how to shape the streams.
type BusConfig struct {
	// URL of an external NATS server or cluster; empty embeds one.
	URL string
	// EmbeddedListen is the embedded server's TCP address; empty: none,
	// clients connect in-process only.
	EmbeddedListen string
	// DataDir holds the embedded server's JetStream files.
	DataDir         string
	StreamPrefix    string
	Replicas        int
	DuplicateWindow time.Duration
	EventsMaxAge    time.Duration
	EventsMaxBytes  int64
	PublishTimeout  time.Duration
	Name            string // connection name, shown by the server
}

// Bus is a connection to NATS with JetStream and reelfeed's streams.
type Bus struct {
	cfg    BusConfig
	server *server.Server // nil when external
	nc     *nats.Conn
	js     jetstream.JetStream
	log    *zap.Logger
	// storedSeq is the highest events-stream sequence this process saw
	// acknowledged: with the consumers' applied sequence, the exact backlog.
	storedSeq atomic.Uint64
}

// Stream and subject names. Subjects carry ids base64url-encoded, because
// ids may contain characters NATS subjects forbid ('.', empty tokens).
func (b *Bus) eventsStream() string      { return b.cfg.StreamPrefix + "_EVENTS" }
func (b *Bus) impressionsStream() string { return b.cfg.StreamPrefix + "_IMPRESSIONS" }
func (b *Bus) catalogStream() string     { return b.cfg.StreamPrefix + "_CATALOG" }
func (b *Bus) subj(s string) string      { return lowerPrefix(b.cfg.StreamPrefix) + "." + s }

func lowerPrefix(p string) string {
	out := []byte(p)
	for i, c := range out {
		if c >= 'A' && c <= 'Z' {
			out[i] = c + 32
		}
	}
	return string(out)
}

// EventsSubject is where behaviour events are published.
func (b *Bus) EventsSubject() string { return b.subj("events") }

// ImpressionsSubject is where the feed publishes what it served.
func (b *Bus) ImpressionsSubject() string { return b.subj("impressions") }

func encodeID(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

// VideoSubject is the catalog subject holding one video's latest state.
func (b *Bus) VideoSubject(id string) string { return b.subj("catalog.video." + encodeID(id)) }

// UserSubject is the catalog subject holding one user's declared attributes.
func (b *Bus) UserSubject(id string) string { return b.subj("catalog.user." + encodeID(id)) }

// KnobsSubject holds the runtime knobs (blacklists, boosts, slot plans…).
func (b *Bus) KnobsSubject() string { return b.subj("catalog.knobs") }

// OpenBus connects to NATS (starting the embedded server when no URL is
// configured) and creates or updates the streams.
func OpenBus(ctx context.Context, cfg BusConfig, log *zap.Logger) (*Bus, error) {
	if cfg.StreamPrefix == "" {
		cfg.StreamPrefix = "REELFEED"
	}
	if cfg.Replicas < 1 {
		cfg.Replicas = 1
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	b := &Bus{cfg: cfg, log: log}
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", zap.Error(err))
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", zap.String("url", nc.ConnectedUrl())) }),
	}
	url := cfg.URL
	if url == "" {
		srv, err := startEmbedded(cfg)
		if err != nil {
			return nil, err
		}
		b.server = srv
		opts = append(opts, nats.InProcessServer(srv))
	} else {
		opts = append(opts, nats.Timeout(3*time.Second), nats.RetryOnFailedConnect(false))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		b.shutdownServer()
		return nil, fmt.Errorf("nats connect %q: %w", url, err)
	}
	b.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	b.js = js
	if err := b.ensureStreams(ctx); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func startEmbedded(cfg BusConfig) (*server.Server, error) {
	storeDir := filepath.Join(cfg.DataDir, "nats")
	if err := os.MkdirAll(storeDir, 0o755); err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	opts := &server.Options{
		ServerName: "reelfeed-embedded",
		JetStream:  true,
		StoreDir:   storeDir,
		NoSigs:     true,
		NoLog:      true,
		DontListen: cfg.EmbeddedListen == "",
		// Embedded JetStream is the durable store of a single-binary
		// deployment: give it room but not the whole machine.
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  cfg.EventsMaxBytes*2 + 1<<30,
	}
	if cfg.EmbeddedListen != "" {
		host, port, err := net.SplitHostPort(cfg.EmbeddedListen)
		if err != nil {
			return nil, fmt.Errorf("nats.embedded.listen: %w", err)
		}
		p, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("nats.embedded.listen: bad port %q", port)
		}
		if p == 0 {
			p = server.RANDOM_PORT // nats-server reads 0 as its default, 4222
		}
		opts.Host, opts.Port = host, p
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("embedded nats: not ready after 10s")
	}
	return srv, nil
}

func (b *Bus) streamConfigs() []jetstream.StreamConfig {
	return []jetstream.StreamConfig{
		{
			Name:        b.eventsStream(),
			Description: "behaviour events reported by the app; the source of profiles and features",
			Subjects:    []string{b.EventsSubject()},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      b.cfg.EventsMaxAge,
			MaxBytes:    b.cfg.EventsMaxBytes,
			Duplicates:  b.cfg.DuplicateWindow,
			Replicas:    b.cfg.Replicas,
			Discard:     jetstream.DiscardOld,
		},
		{
			Name:        b.impressionsStream(),
			Description: "what the feed served (impressions with logged ranking features)",
			Subjects:    []string{b.ImpressionsSubject()},
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			MaxAge:      b.cfg.EventsMaxAge,
			MaxBytes:    b.cfg.EventsMaxBytes,
			Duplicates:  b.cfg.DuplicateWindow,
			Replicas:    b.cfg.Replicas,
			Discard:     jetstream.DiscardOld,
		},
		{
			Name:              b.catalogStream(),
			Description:       "latest state of every video, user and the runtime knobs (one message per subject)",
			Subjects:          []string{b.subj("catalog.>")},
			Storage:           jetstream.FileStorage,
			Retention:         jetstream.LimitsPolicy,
			MaxMsgsPerSubject: 1,
			Duplicates:        b.cfg.DuplicateWindow,
			Replicas:          b.cfg.Replicas,
		},
	}
}

// ensureStreams creates or updates every stream; safe when several
// replicas start at once.
func (b *Bus) ensureStreams(ctx context.Context) error {
	for _, sc := range b.streamConfigs() {
		if _, err := b.js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// Ready reports whether NATS is connected and every stream exists.
func (b *Bus) Ready(ctx context.Context) error {
	if !b.nc.IsConnected() {
		return fmt.Errorf("nats not connected (status %s)", b.nc.Status())
	}
	for _, sc := range b.streamConfigs() {
		if _, err := b.js.Stream(ctx, sc.Name); err != nil {
			return fmt.Errorf("stream %s: %w", sc.Name, err)
		}
	}
	return nil
}

// Close drains the connection (delivering what is in flight) and stops the
// embedded server.
func (b *Bus) Close() {
	if b.nc != nil {
		if err := b.nc.Drain(); err != nil {
			b.nc.Close()
		}
		deadline := time.Now().Add(2 * time.Second)
		for !b.nc.IsClosed() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		b.nc.Close()
	}
	b.shutdownServer()
}

func (b *Bus) shutdownServer() {
	if b.server != nil {
		b.server.Shutdown()
		b.server.WaitForShutdown()
	}
}
