package ingest

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"reelfeed/catalog"
	"reelfeed/event"
)

// Header names on catalog messages.
const (
	headerOp    = "Reelfeed-Op"
	opDelete    = "delete"
	opUpsert    = "upsert"
	headerKind  = "Reelfeed-Kind"
	kindVideo   = "video"
	kindUser    = "user"
	kindKnobs   = "knobs"
	maxInFlight = 4096
)

// PublishResult says what the stream did with a batch.
type PublishResult struct {
	Stored     int // newly stored
	Duplicates int // already in the stream (same event id within the dedupe window)
}

// ErrUnavailable means the stream could not confirm the write: the caller
// must not claim the data is stored.
var ErrUnavailable = errors.New("event stream unavailable")

// PublishEvents stores every event in the events stream, using each event
// id as the JetStream message id so a retried event is stored once. It
// returns only when the stream acknowledged every event, or with an error
// wrapping ErrUnavailable when it could not.
func (b *Bus) PublishEvents(ctx context.Context, events []event.Event) (PublishResult, error) {
	return b.publishBatch(ctx, events)
}

func (b *Bus) publishBatch(ctx context.Context, events []event.Event) (PublishResult, error) {
	var res PublishResult
	if !b.nc.IsConnected() {
		return res, fmt.Errorf("%w: nats not connected", ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, 0, len(events))
	for i := range events {
		data, err := json.Marshal(&events[i])
		if err != nil {
			return res, fmt.Errorf("encode event %d: %w", i, err)
		}
		msg := &nats.Msg{Subject: b.EventsSubject(), Data: data, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, events[i].ID)
		f, err := b.js.PublishMsgAsync(msg, jetstream.WithStallWait(b.cfg.PublishTimeout))
		if err != nil {
			return res, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			for cur := b.storedSeq.Load(); ack.Sequence > cur && !b.storedSeq.CompareAndSwap(cur, ack.Sequence); cur = b.storedSeq.Load() {
			}
			if ack.Duplicate {
				res.Duplicates++
			} else {
				res.Stored++
			}
		case err := <-f.Err():
			return res, fmt.Errorf("%w: %v", ErrUnavailable, err)
		case <-ctx.Done():
			return res, fmt.Errorf("%w: no acknowledgement: %v", ErrUnavailable, ctx.Err())
		}
	}
	return res, nil
}

func contentID(prefix string, data []byte) string {
	sum := sha256.Sum256(data)
	return prefix + hex.EncodeToString(sum[:12])
}

func (b *Bus) publishCatalog(ctx context.Context, subject, kind, op string, data []byte) error {
	if !b.nc.IsConnected() {
		return fmt.Errorf("%w: nats not connected", ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.PublishTimeout)
	defer cancel()
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(headerOp, op)
	msg.Header.Set(headerKind, kind)
	msg.Header.Set(jetstream.MsgIDHeader, contentID(subject+op, data))
	if _, err := b.js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// PublishVideos stores video upserts in the catalog stream (latest state
// per video), in parallel, acknowledged before returning.
func (b *Bus) PublishVideos(ctx context.Context, videos []*catalog.Video) error {
	return parallel(ctx, len(videos), 32, func(ctx context.Context, i int) error {
		data, err := json.Marshal(videos[i])
		if err != nil {
			return err
		}
		return b.publishCatalog(ctx, b.VideoSubject(videos[i].ID), kindVideo, opUpsert, data)
	})
}

// PublishVideoDelete stores a tombstone for a video.
func (b *Bus) PublishVideoDelete(ctx context.Context, id string) error {
	data, _ := json.Marshal(map[string]string{"video_id": id})
	return b.publishCatalog(ctx, b.VideoSubject(id), kindVideo, opDelete, data)
}

// PublishUser stores a user's declared attributes.
func (b *Bus) PublishUser(ctx context.Context, u *catalog.User) error {
	data, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return b.publishCatalog(ctx, b.UserSubject(u.ID), kindUser, opUpsert, data)
}

// PublishKnobs stores the runtime knobs; every replica applies them.
func (b *Bus) PublishKnobs(ctx context.Context, state any) error {
	data, err := json.Marshal(state)
	if err != nil {
		return err
	}
	return b.publishCatalog(ctx, b.KnobsSubject(), kindKnobs, opUpsert, data)
}

// parallel runs fn for 0..n-1 with at most width at once; the first error
// wins.
func parallel(ctx context.Context, n, width int, fn func(context.Context, int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := 0; i < n; i++ {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			if err := fn(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}(i)
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return first
}

// ImpressionSink publishes what the feed served, asynchronously: the feed
// must never wait on or fail because of it. When the buffer is full,
// impressions are dropped and counted rather than blocking a request.
// Each served page is one message (see pageMessage).
type ImpressionSink struct {
	bus     *Bus
	ch      chan []event.Event
	log     *zap.Logger
	dropped func(n int)
	done    chan struct{}

	mu     sync.RWMutex // guards closed against a send on a closed channel
	closed bool
}

// NewImpressionSink starts the publishing goroutine; Close stops it after
// flushing what is buffered.
func NewImpressionSink(bus *Bus, buffer int, log *zap.Logger, dropped func(n int)) *ImpressionSink {
	s := &ImpressionSink{bus: bus, ch: make(chan []event.Event, buffer), log: log, dropped: dropped, done: make(chan struct{})}
	go s.run()
	return s
}

// Publish queues impressions; it never blocks.
func (s *ImpressionSink) Publish(_ context.Context, events []event.Event) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		if s.dropped != nil {
			s.dropped(len(events))
		}
		return
	}
	select {
	case s.ch <- events:
	default:
		if s.dropped != nil {
			s.dropped(len(events))
		}
	}
}

// maxPagesPerFlush bounds how many queued pages one flush publishes before
// waiting for their acknowledgements: enough to keep a round trip per
// flush instead of per page, well under the client's 4000 pending async
// publishes.
const maxPagesPerFlush = 256

func (s *ImpressionSink) run() {
	defer close(s.done)
	var lastWarn time.Time
	pages := make([][]event.Event, 0, maxPagesPerFlush)
	for page := range s.ch {
		pages = s.appendQueued(append(pages[:0], page))
		lost, err := s.bus.publishPages(pages)
		clear(pages) // the sink owns the events: let them go before blocking again
		if lost == 0 {
			continue
		}
		if s.dropped != nil {
			s.dropped(lost)
		}
		if time.Since(lastWarn) > 10*time.Second {
			s.log.Warn("impressions not published", zap.Error(err), zap.Int("events", lost))
			lastWarn = time.Now()
		}
	}
}

// appendQueued takes the pages already waiting, without blocking, so that
// under load one flush carries many pages.
func (s *ImpressionSink) appendQueued(pages [][]event.Event) [][]event.Event {
	for len(pages) < maxPagesPerFlush {
		select {
		case page, ok := <-s.ch:
			if !ok {
				return pages
			}
			pages = append(pages, page)
		default:
			return pages
		}
	}
	return pages
}

// publishPages stores each page of impressions as one message on the
// impressions subject, all published before any acknowledgement is
// awaited. It returns how many events the stream did not confirm, and the
// first error.
func (b *Bus) publishPages(pages [][]event.Event) (lost int, err error) {
	if !b.nc.IsConnected() {
		return countEvents(pages), fmt.Errorf("%w: nats not connected", ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.cfg.PublishTimeout)
	defer cancel()
	futures, unsent, sendErr := b.sendPages(pages)
	unacked, ackErr := awaitPages(ctx, pages, futures)
	return unsent + unacked, cmp.Or(sendErr, ackErr)
}

// sendPages publishes the pages without waiting for acknowledgements. It
// returns one future per page (nil: not sent), how many events were not
// sent, and the first error.
func (b *Bus) sendPages(pages [][]event.Event) (futures []jetstream.PubAckFuture, unsent int, err error) {
	futures = make([]jetstream.PubAckFuture, len(pages))
	for i, page := range pages {
		f, pubErr := b.publishPageAsync(page)
		switch {
		case errors.Is(pubErr, ErrUnavailable):
			// The rest would fail the same way, each after its own stall
			// wait, holding up Close for minutes.
			return futures, unsent + countEvents(pages[i:]), cmp.Or(err, pubErr)
		case pubErr != nil: // this page does not encode; the others may
			unsent += len(page)
			err = cmp.Or(err, pubErr)
		default:
			futures[i] = f
		}
	}
	return futures, unsent, err
}

// awaitPages waits for the acknowledgements of the pages sent and returns
// how many events the stream did not confirm, and the first error.
func awaitPages(ctx context.Context, pages [][]event.Event, futures []jetstream.PubAckFuture) (unacked int, err error) {
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok(): // stored, or a duplicate already stored
		case ackErr := <-f.Err():
			unacked += len(pages[i])
			err = cmp.Or(err, fmt.Errorf("%w: %v", ErrUnavailable, ackErr))
		case <-ctx.Done():
			unacked += len(pages[i])
			err = cmp.Or(err, fmt.Errorf("%w: no acknowledgement: %v", ErrUnavailable, ctx.Err()))
		}
	}
	return unacked, err
}

func (b *Bus) publishPageAsync(page []event.Event) (jetstream.PubAckFuture, error) {
	msg, err := pageMessage(b.ImpressionsSubject(), page)
	if err != nil {
		return nil, err
	}
	f, err := b.js.PublishMsgAsync(msg, jetstream.WithStallWait(b.cfg.PublishTimeout))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return f, nil
}

func countEvents(pages [][]event.Event) int {
	n := 0
	for _, page := range pages {
		n += len(page)
	}
	return n
}

// Close flushes buffered impressions and stops.
func (s *ImpressionSink) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.ch)
	s.mu.Unlock()
	<-s.done
}
