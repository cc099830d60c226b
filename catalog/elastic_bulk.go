package catalog

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/olivere/elastic/v7"
	"go.uber.org/zap"
)

// elasticRetryItemStatuses are the bulk item statuses the processor re-sends
// with backoff: request timeout, rejected execution (429), unavailable
// shard, insufficient storage. Everything else is final.
func elasticRetryItemStatuses() []int { return []int{408, 429, 503, 507} }

// bulkShard is one single-worker BulkProcessor behind a buffered queue. The
// queue lets Upsert and Delete honour their context: BulkProcessor.Add
// blocks, without a context, while the worker retries a failed commit.
type bulkShard struct {
	queue chan bulkItem
	proc  *elastic.BulkProcessor
}

// bulkItem is an action, or a flush marker when flushed is non-nil. Markers
// travel through the queue so a Flush covers everything enqueued before it.
type bulkItem struct {
	req     elastic.BulkableRequest
	flushed chan struct{}
}

func (e *Elastic) startBulk(ctx context.Context) error {
	// The processors outlive the setup context; Close cancels this one.
	bulkCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.cancelBulk = cancel
	perShard := max(1, e.cfg.QueueSize/e.cfg.BulkWorkers)
	for i := range e.cfg.BulkWorkers {
		proc, err := e.client.BulkProcessor().
			Name("reelfeed-catalog-" + strconv.Itoa(i)).
			Workers(1).
			BulkActions(e.cfg.BulkActions).
			BulkSize(e.cfg.BulkSize).
			FlushInterval(e.cfg.BulkFlushInterval).
			Backoff(elastic.NewExponentialBackoff(e.cfg.BulkBackoffInitial, e.cfg.BulkBackoffMax)).
			RetryItemStatusCodes(elasticRetryItemStatuses()...).
			After(e.afterBulk).
			Do(bulkCtx)
		if err != nil {
			for _, s := range e.shards {
				_ = s.proc.Close()
			}
			cancel()
			return fmt.Errorf("elasticsearch: starting bulk processor: %w", err)
		}
		e.shards = append(e.shards, &bulkShard{queue: make(chan bulkItem, perShard), proc: proc})
	}
	for _, s := range e.shards {
		e.forwarders.Add(1)
		go e.forward(s)
	}
	return nil
}

func (e *Elastic) forward(s *bulkShard) {
	defer e.forwarders.Done()
	for item := range s.queue {
		if item.flushed != nil {
			_ = s.proc.Flush() // always nil; failures surface through afterBulk
			close(item.flushed)
			continue
		}
		s.proc.Add(item.req)
	}
}

func (e *Elastic) queued() float64 {
	n := 0
	for _, s := range e.shards {
		n += len(s.queue)
	}
	return float64(n)
}

// Upsert queues v for indexing. It returns once the action is buffered, not
// when Elasticsearch has it (see Flush); it blocks only while the queue is
// full, until ctx ends. Writes to one video are applied in call order.
func (e *Elastic) Upsert(ctx context.Context, v *Video) error {
	if err := checkUpsert(v); err != nil {
		return err
	}
	req := elastic.NewBulkIndexRequest().Index(e.index).Id(v.ID).Doc(newElasticDoc(v))
	return e.enqueue(ctx, e.shardFor(v.ID), bulkItem{req: req})
}

// Delete queues removal of a video; deleting a missing video is not an error.
func (e *Elastic) Delete(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("elasticsearch delete: empty video id")
	}
	req := elastic.NewBulkDeleteRequest().Index(e.index).Id(id)
	return e.enqueue(ctx, e.shardFor(id), bulkItem{req: req})
}

// UpsertVersion is Upsert with an external version, e.g. the catalog
// stream's sequence number: Elasticsearch keeps the write with the highest
// version, so replicas that apply the same stream at different speeds, or
// redeliveries, never bring back an older state. Use versions >= 1 and use
// the versioned or the plain calls for a video, not both.
func (e *Elastic) UpsertVersion(ctx context.Context, v *Video, version int64) error {
	if err := checkUpsert(v); err != nil {
		return err
	}
	if version < 1 {
		return fmt.Errorf("elasticsearch upsert %s: version %d, want >= 1", v.ID, version)
	}
	req := elastic.NewBulkIndexRequest().Index(e.index).Id(v.ID).Doc(newElasticDoc(v)).
		Version(version).VersionType("external_gte")
	return e.enqueue(ctx, e.shardFor(v.ID), bulkItem{req: req})
}

// DeleteVersion is Delete with an external version (see UpsertVersion).
// Elasticsearch remembers a deleted version for index.gc_deletes (60 s by
// default); an older upsert arriving later than that recreates the video.
func (e *Elastic) DeleteVersion(ctx context.Context, id string, version int64) error {
	if id == "" {
		return errors.New("elasticsearch delete: empty video id")
	}
	if version < 1 {
		return fmt.Errorf("elasticsearch delete %s: version %d, want >= 1", id, version)
	}
	req := elastic.NewBulkDeleteRequest().Index(e.index).Id(id).Version(version).VersionType("external_gte")
	return e.enqueue(ctx, e.shardFor(id), bulkItem{req: req})
}

func checkUpsert(v *Video) error {
	if v == nil || v.ID == "" {
		return errors.New("elasticsearch upsert: video without an id")
	}
	return nil
}

func (e *Elastic) enqueue(ctx context.Context, s *bulkShard, item bulkItem) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		return ErrElasticClosed
	}
	select {
	case s.queue <- item:
		return nil
	default:
	}
	select {
	case s.queue <- item:
		return nil
	case <-ctx.Done():
		e.metrics.queueTimeouts.Inc()
		return fmt.Errorf("elasticsearch: indexing queue full: %w", ctx.Err())
	case <-e.closing:
		return ErrElasticClosed
	}
}

// Flush commits everything queued before the call and waits for it. It
// reports an error when a bulk commit or item failed meanwhile; a commit
// that failed after retries keeps its actions and retries them with the
// next commit.
func (e *Elastic) Flush(ctx context.Context) error {
	before := e.failures.Load()
	markers := make([]chan struct{}, 0, len(e.shards))
	for _, s := range e.shards {
		m := make(chan struct{})
		if err := e.enqueue(ctx, s, bulkItem{flushed: m}); err != nil {
			return err
		}
		markers = append(markers, m)
	}
	for _, m := range markers {
		select {
		case <-m:
		case <-ctx.Done():
			return fmt.Errorf("elasticsearch flush: %w", ctx.Err())
		}
	}
	if n := e.failures.Load() - before; n > 0 {
		last := ""
		if p := e.lastFailure.Load(); p != nil {
			last = *p
		}
		return fmt.Errorf("elasticsearch flush: %d bulk failures, last: %s", n, last)
	}
	return nil
}

func (e *Elastic) recordFailure(msg string) {
	e.lastFailure.Store(&msg)
	e.failures.Add(1)
}

// afterBulk sees each commit once its retries are over.
func (e *Elastic) afterBulk(_ int64, reqs []elastic.BulkableRequest, _ *elastic.BulkResponse, err error) {
	if err == nil {
		e.metrics.bulkCommits.WithLabelValues("ok").Inc()
		return
	}
	e.metrics.bulkCommits.WithLabelValues("error").Inc()
	e.recordFailure(err.Error())
	msg := "elasticsearch bulk commit failed after retries; its actions stay buffered for the next commit"
	if errors.Is(err, elastic.ErrBulkItemRetry) {
		msg = "elasticsearch kept rejecting bulk items after retries; they stay buffered for the next commit"
	}
	e.commitLogs.do(func(suppressed int64) {
		e.logger.Warn(msg, zap.Int("actions", len(reqs)), zap.Error(err), zap.Int64("suppressed", suppressed))
	})
}

// observeBulk counts the items of every bulk response, including each retry
// attempt. The After callback cannot do this: on a retry it receives only
// the last attempt's response, which lacks the items settled earlier.
func (e *Elastic) observeBulk(res *elastic.BulkResponse) {
	for _, item := range res.Items {
		for action, r := range item {
			result := bulkItemResult(action, r.Status)
			e.metrics.bulkItems.WithLabelValues(result).Inc()
			if result != "failed" {
				continue
			}
			reason := ""
			if r.Error != nil {
				reason = r.Error.Type + ": " + r.Error.Reason
			}
			e.recordFailure(fmt.Sprintf("%s %s: status %d %s", action, r.Id, r.Status, reason))
			e.itemLogs.do(func(suppressed int64) {
				e.logger.Warn("elasticsearch bulk item failed",
					zap.String("action", action), zap.String("video_id", r.Id), zap.Int("status", r.Status),
					zap.String("reason", reason), zap.Int64("suppressed", suppressed))
			})
		}
	}
}

func bulkItemResult(action string, status int) string {
	switch {
	case status >= 200 && status <= 299:
		return "ok"
	case status == 404 && action == "delete":
		return "not_found"
	case status == 409:
		return "conflict"
	}
	for _, s := range elasticRetryItemStatuses() {
		if status == s {
			return "rejected"
		}
	}
	return "failed"
}

// bulkObservingDecoder decodes like the default decoder and hands every
// decoded bulk response to observe.
type bulkObservingDecoder struct {
	inner   elastic.Decoder
	observe func(*elastic.BulkResponse)
}

func (d bulkObservingDecoder) Decode(data []byte, v any) error {
	if err := d.inner.Decode(data, v); err != nil {
		return err
	}
	if res, ok := v.(*elastic.BulkResponse); ok && res != nil {
		d.observe(res)
	}
	return nil
}
