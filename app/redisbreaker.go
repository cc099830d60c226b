package app

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// errRedisDown is returned without touching the network while the breaker
// is open.
var errRedisDown = errors.New("redis unavailable (circuit open)")

// redisBreaker is a go-redis hook that stops waiting on a Redis that is
// down: after `threshold` consecutive network failures every command fails
// at once for `cooldown`, then one probe goes through. Feeds then degrade
// in microseconds (last-known profiles, prior features, cached hot lists)
// instead of paying dial timeouts and retries on every request.
type redisBreaker struct {
	threshold int32
	cooldown  time.Duration
	failures  atomic.Int32
	openUntil atomic.Int64 // unix nanos
	onOpen    func()
}

func (b *redisBreaker) allow() bool {
	until := b.openUntil.Load()
	if until == 0 {
		return true
	}
	now := time.Now().UnixNano()
	if now < until {
		return false
	}
	// Let one probe through per cool-down.
	return b.openUntil.CompareAndSwap(until, now+int64(b.cooldown))
}

func (b *redisBreaker) record(err error) {
	if err == nil || errors.Is(err, redis.Nil) || !isNetworkError(err) {
		if b.failures.Load() != 0 || b.openUntil.Load() != 0 {
			b.failures.Store(0)
			b.openUntil.Store(0)
		}
		return
	}
	if b.failures.Add(1) >= b.threshold && b.openUntil.Load() == 0 {
		b.openUntil.Store(time.Now().Add(b.cooldown).UnixNano())
		if b.onOpen != nil {
			b.onOpen()
		}
	}
}

func isNetworkError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errRedisDown) ||
		errors.Is(err, redis.ErrClosed) || errors.Is(err, net.ErrClosed)
}

func (b *redisBreaker) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if !b.allow() {
			return nil, errRedisDown
		}
		conn, err := next(ctx, network, addr)
		if err != nil {
			b.record(err)
		}
		return conn, err
	}
}

func (b *redisBreaker) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !b.allow() {
			cmd.SetErr(errRedisDown)
			return errRedisDown
		}
		err := next(ctx, cmd)
		b.record(err)
		return err
	}
}

func (b *redisBreaker) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !b.allow() {
			for _, c := range cmds {
				c.SetErr(errRedisDown)
			}
			return errRedisDown
		}
		err := next(ctx, cmds)
		b.record(err)
		return err
	}
}
