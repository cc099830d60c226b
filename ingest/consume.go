package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"reelfeed/catalog"
	"reelfeed/event"
)

// ApplyFunc applies a batch of events to the stores. It must be idempotent
// per event id: on error the whole batch is redelivered later.
type ApplyFunc func(ctx context.Context, events []event.Event) error

// ConsumerConfig shapes an event consumer.
type ConsumerConfig struct {
	// Shared selects a durable consumer shared by every replica (each
	// event applied by one of them: stores in Redis). Otherwise each
	// process replays the whole stream into its own memory stores.
	Shared  bool
	Batch   int
	AckWait time.Duration
	// OnlyNew starts a (non-shared) consumer at the streams' ends: it sees
	// live traffic only, not history (the training-sample join).
	OnlyNew bool
	// Linger is how long a consumer waits for a batch to fill once its
	// first event arrived: a few milliseconds of latency buy batches large
	// enough that per-batch costs vanish under load.
	Linger time.Duration
}

// ConsumerMetrics receives what a consumer did; any func may be nil.
type ConsumerMetrics struct {
	Applied      func(stream string, n int)
	Failed       func(stream string, n int)
	Lag          func(stream string, pending uint64)
	ApplyLatency func(stream string, d time.Duration)           // store write time per batch
	Visible      func(stream string, sinceStored time.Duration) // stream timestamp → applied
}

// Consumer applies one stream's events with batching.
type Consumer struct {
	stream   string
	bus      *Bus
	cfg      ConsumerConfig
	apply    ApplyFunc
	metrics  ConsumerMetrics
	log      *zap.Logger
	cc       jetstream.ConsumeContext
	msgs     chan jetstream.Msg
	wg       sync.WaitGroup
	caughtUp atomic.Bool
	applied  atomic.Uint64 // highest stream sequence applied
	stopped  chan struct{}
}

// Backlog is how many events this process stored in the events stream
// that this consumer has not applied yet (0 for other streams).
func (c *Consumer) Backlog() uint64 {
	if c.stream != c.bus.eventsStream() {
		return 0
	}
	stored, applied := c.bus.storedSeq.Load(), c.applied.Load()
	if stored <= applied {
		return 0
	}
	return stored - applied
}

// StartEventConsumers starts one consumer on the events stream and one on
// the impressions stream.
func (b *Bus) StartEventConsumers(ctx context.Context, cfg ConsumerConfig, apply ApplyFunc, m ConsumerMetrics) ([]*Consumer, error) {
	var out []*Consumer
	for _, stream := range []string{b.eventsStream(), b.impressionsStream()} {
		c, err := b.startConsumer(ctx, stream, cfg, apply, m)
		if err != nil {
			for _, c := range out {
				c.Stop()
			}
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func (b *Bus) startConsumer(ctx context.Context, stream string, cfg ConsumerConfig, apply ApplyFunc, m ConsumerMetrics) (*Consumer, error) {
	if cfg.Batch < 1 {
		cfg.Batch = 1000
	}
	if cfg.AckWait <= 0 {
		cfg.AckWait = 30 * time.Second
	}
	var cons jetstream.Consumer
	var err error
	if cfg.Shared {
		cons, err = b.js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
			Durable:       "applier",
			Description:   "applies events to the shared profile and feature stores",
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       cfg.AckWait,
			MaxAckPending: cfg.Batch * 20,
			MaxDeliver:    -1,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		})
	} else {
		policy := jetstream.DeliverAllPolicy
		if cfg.OnlyNew {
			policy = jetstream.DeliverNewPolicy
		}
		cons, err = b.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{DeliverPolicy: policy})
	}
	if err != nil {
		return nil, fmt.Errorf("consumer on %s: %w", stream, err)
	}
	c := &Consumer{
		stream: stream, bus: b, cfg: cfg, apply: apply, metrics: m, log: b.log.With(zap.String("stream", stream)),
		msgs: make(chan jetstream.Msg, cfg.Batch*4), stopped: make(chan struct{}),
	}
	info, err := b.js.Stream(ctx, stream)
	if err == nil {
		if si, err := info.Info(ctx); err == nil && si.State.Msgs == 0 {
			c.caughtUp.Store(true)
		}
	}
	if ci, err := cons.Info(ctx); cfg.OnlyNew || (err == nil && ci.NumPending == 0 && ci.NumAckPending == 0) {
		c.caughtUp.Store(true)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) { c.msgs <- msg },
		jetstream.PullMaxMessages(cfg.Batch*2),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if !errors.Is(err, jetstream.ErrNoHeartbeat) {
				c.log.Debug("consume", zap.Error(err))
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", stream, err)
	}
	c.cc = cc
	c.wg.Add(1)
	go c.loop()
	return c, nil
}

// CaughtUp reports whether the consumer has applied everything that was in
// the stream when it started (state rebuilt after a restart).
func (c *Consumer) CaughtUp() bool { return c.caughtUp.Load() }

// consumedBatch is what the loop gathered for one apply: the messages to
// acknowledge together and the events they carry.
type consumedBatch struct {
	msgs    []jetstream.Msg // decoded messages; corrupt ones were terminated
	events  []event.Event
	oldest  time.Time // earliest stream timestamp, for the visibility metric
	pending uint64    // messages left in the stream after the latest one
	lastSeq uint64    // highest stream sequence handled, corrupt ones included
}

// full reports whether the batch reached the configured size: in events,
// since an impressions message carries a whole page of them.
func (b *consumedBatch) full(size int) bool {
	return len(b.events) >= size || len(b.msgs) >= size
}

func (c *Consumer) loop() {
	defer c.wg.Done()
	var msgs []jetstream.Msg
	for {
		b := consumedBatch{msgs: msgs[:0]}
		select {
		case msg := <-c.msgs:
			c.add(&b, msg)
		case <-c.stopped:
			return
		}
		linger := time.NewTimer(c.cfg.Linger)
	fill:
		for !b.full(c.cfg.Batch) {
			select {
			case msg := <-c.msgs:
				c.add(&b, msg)
			case <-linger.C:
				break fill
			case <-c.stopped:
				break fill
			}
		}
		linger.Stop()
		c.process(&b)
		msgs = b.msgs
		clear(msgs) // keep the slice, not the acknowledged messages
	}
}

// add decodes msg into the batch. A message that does not decode is
// corruption (only the server publishes here): it is logged and, on a
// shared consumer, terminated instead of being redelivered forever. Its
// position still counts as handled, so it cannot hold back CaughtUp.
func (c *Consumer) add(b *consumedBatch, msg jetstream.Msg) {
	if md, err := msg.Metadata(); err == nil {
		if b.oldest.IsZero() || md.Timestamp.Before(b.oldest) {
			b.oldest = md.Timestamp
		}
		b.pending = md.NumPending
		b.lastSeq = max(b.lastSeq, md.Sequence.Stream)
	}
	events, err := appendMessageEvents(b.events, msg.Data())
	if err != nil {
		c.log.Error("undecodable message in stream, terminating it", zap.Error(err))
		if c.cfg.Shared {
			_ = msg.Term()
		}
		return
	}
	b.events = events
	b.msgs = append(b.msgs, msg)
}

func (c *Consumer) process(b *consumedBatch) {
	if len(b.events) > 0 && !c.applyUntilDone(b) {
		return
	}
	if c.cfg.Shared {
		for _, msg := range b.msgs {
			_ = msg.Ack()
		}
	}
	if c.metrics.Applied != nil {
		c.metrics.Applied(c.stream, len(b.events))
	}
	if c.metrics.Visible != nil && !b.oldest.IsZero() {
		c.metrics.Visible(c.stream, time.Since(b.oldest))
	}
	if b.lastSeq > c.applied.Load() {
		c.applied.Store(b.lastSeq)
	}
	if c.metrics.Lag != nil {
		c.metrics.Lag(c.stream, b.pending)
	}
	if b.pending == 0 {
		c.caughtUp.Store(true)
	}
}

// applyUntilDone applies the batch's events, retrying with backoff. It
// reports false when the batch was handed back instead (a shared consumer
// naks it for any replica to take) or the consumer is stopping.
func (c *Consumer) applyUntilDone(b *consumedBatch) bool {
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := time.Now()
		err := c.apply(ctx, b.events)
		cancel()
		if err == nil {
			if c.metrics.ApplyLatency != nil {
				c.metrics.ApplyLatency(c.stream, time.Since(start))
			}
			return true
		}
		if c.metrics.Failed != nil {
			c.metrics.Failed(c.stream, len(b.events))
		}
		c.log.Warn("applying events failed; will retry", zap.Error(err), zap.Int("events", len(b.events)), zap.Int("attempt", attempt))
		if c.cfg.Shared {
			// Let another replica (or this one, later) take them: the
			// stores are idempotent per event id.
			for _, msg := range b.msgs {
				_ = msg.NakWithDelay(backoff(attempt))
			}
			return false
		}
		select {
		case <-time.After(backoff(attempt)):
		case <-c.stopped:
			return false
		}
	}
}

func backoff(attempt int) time.Duration {
	d := 200 * time.Millisecond << min(attempt, 5)
	return min(d, 5*time.Second)
}

// Stop stops fetching, applies what was already fetched, and returns.
// Unacknowledged messages of a shared consumer go to other replicas.
func (c *Consumer) Stop() {
	c.cc.Drain() // the loop keeps applying while the drain delivers the rest
	select {
	case <-c.cc.Closed():
	case <-time.After(2 * time.Second): // NATS gone: nothing more will come
		c.cc.Stop()
	}
	close(c.stopped)
	c.wg.Wait()
	var rest consumedBatch
	for {
		select {
		case msg := <-c.msgs:
			c.add(&rest, msg)
			continue
		default:
		}
		break
	}
	if len(rest.msgs) > 0 {
		c.process(&rest)
	}
}

// CatalogHandler receives catalog stream changes.
type CatalogHandler struct {
	Catalog *catalog.Catalog
	// Knobs receives the runtime knob state as published (may be nil).
	Knobs func(data []byte) error
	// Index mirrors video changes into a secondary index (Elasticsearch),
	// versioned by stream sequence so a replayed or late write never
	// brings back an older state; nil: none.
	Index VideoIndex
}

// VideoIndex is a secondary catalog index kept in step with the stream.
type VideoIndex interface {
	UpsertVersion(ctx context.Context, v *catalog.Video, version int64) error
	DeleteVersion(ctx context.Context, id string, version int64) error
}

// CatalogWatcher keeps a replica's catalog in sync with the catalog stream.
type CatalogWatcher struct {
	cc       jetstream.ConsumeContext
	caughtUp atomic.Bool
}

// WatchCatalog replays the catalog stream (latest state per video, user and
// knobs) into the handler and then follows it.
func (b *Bus) WatchCatalog(ctx context.Context, h CatalogHandler) (*CatalogWatcher, error) {
	cons, err := b.js.OrderedConsumer(ctx, b.catalogStream(), jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, fmt.Errorf("catalog consumer: %w", err)
	}
	w := &CatalogWatcher{}
	if ci, err := cons.Info(ctx); err == nil && ci.NumPending == 0 {
		w.caughtUp.Store(true)
	} else {
		h.Catalog.BeginBulk() // replaying: order the lists once at the end
	}
	log := b.log.With(zap.String("stream", b.catalogStream()))
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		if err := applyCatalogMsg(h, msg); err != nil {
			log.Error("catalog message skipped", zap.String("subject", msg.Subject()), zap.Error(err))
		}
		if md, err := msg.Metadata(); err == nil && md.NumPending == 0 && !w.caughtUp.Load() {
			h.Catalog.EndBulk()
			w.caughtUp.Store(true)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("catalog consume: %w", err)
	}
	w.cc = cc
	return w, nil
}

func applyCatalogMsg(h CatalogHandler, msg jetstream.Msg) error {
	kind := msg.Headers().Get(headerKind)
	op := msg.Headers().Get(headerOp)
	switch kind {
	case kindVideo:
		if op == opDelete {
			var d struct {
				ID string `json:"video_id"`
			}
			if err := json.Unmarshal(msg.Data(), &d); err != nil {
				return err
			}
			h.Catalog.Delete(d.ID)
			if h.Index != nil {
				return indexWrite(msg, func(ctx context.Context, seq int64) error { return h.Index.DeleteVersion(ctx, d.ID, seq) })
			}
			return nil
		}
		var v catalog.Video
		if err := json.Unmarshal(msg.Data(), &v); err != nil {
			return err
		}
		h.Catalog.Upsert(&v)
		if h.Index != nil {
			return indexWrite(msg, func(ctx context.Context, seq int64) error { return h.Index.UpsertVersion(ctx, &v, seq) })
		}
	case kindUser:
		var u catalog.User
		if err := json.Unmarshal(msg.Data(), &u); err != nil {
			return err
		}
		h.Catalog.PutUser(&u)
	case kindKnobs:
		if h.Knobs != nil {
			return h.Knobs(msg.Data())
		}
	default:
		return fmt.Errorf("unknown catalog message kind %q", kind)
	}
	return nil
}

func indexWrite(msg jetstream.Msg, write func(context.Context, int64) error) error {
	md, err := msg.Metadata()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return write(ctx, int64(md.Sequence.Stream))
}

// CaughtUp reports whether the initial replay is done.
func (w *CatalogWatcher) CaughtUp() bool { return w.caughtUp.Load() }

// Stop stops following the stream.
func (w *CatalogWatcher) Stop() { w.cc.Stop() }
