// Package testenv gives integration tests the machine's real services.
// Locally a test skips when a service does not answer; under CI (CI=true)
// it fails instead, so a green CI means the integration tests really ran.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// InCI reports whether tests run under CI, where missing services fail.
func InCI() bool { return os.Getenv("CI") == "true" }

func unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s unavailable under CI=true: %v", what, err)
	}
	t.Skipf("%s unavailable (set CI=true to fail instead): %v", what, err)
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// RedisAddr returns the address of the real Redis (REELFEED_TEST_REDIS_ADDR,
// default 127.0.0.1:6379), skipping or failing when it does not answer.
func RedisAddr(t testing.TB) string {
	t.Helper()
	addr := env("REELFEED_TEST_REDIS_ADDR", "127.0.0.1:6379")
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		unavailable(t, "redis at "+addr, err)
	}
	return addr
}

// Redis returns a client on the real Redis and a key prefix unique to this
// test; every key under the prefix is deleted when the test ends. Tests in
// different packages run at once against the same server, so they must
// never FLUSHDB: isolate by prefix instead.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	addr := RedisAddr(t)
	c := redis.NewClient(&redis.Options{Addr: addr})
	prefix := "rftest:" + RandomID() + ":"
	t.Cleanup(func() {
		if err := DeletePrefix(c, prefix); err != nil {
			t.Logf("cleanup: %v", err)
		}
		c.Close()
	})
	return c, prefix
}

// DeletePrefix deletes every key under prefix (SCAN + DEL in batches).
func DeletePrefix(c *redis.Client, prefix string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			c.Del(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		c.Del(ctx, keys...)
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("redis scan %s*: %w", prefix, err)
	}
	return nil
}

// NATSURL returns the URL of the real NATS server with JetStream
// (REELFEED_TEST_NATS_URL, default nats://127.0.0.1:4222), skipping or
// failing when it does not answer. Tests must use stream and consumer names
// unique to the test (see RandomID) and delete them when done.
func NATSURL(t testing.TB) string {
	t.Helper()
	url := env("REELFEED_TEST_NATS_URL", "nats://127.0.0.1:4222")
	host := url
	if len(host) > 7 && host[:7] == "nats://" {
		host = host[7:]
	}
	conn, err := net.DialTimeout("tcp", host, time.Second)
	if err != nil {
		unavailable(t, "nats at "+url, err)
		return ""
	}
	conn.Close()
	return url
}

// RandomID returns 12 random hex characters.
func RandomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// tests that start their own redis-server or nats-server.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
