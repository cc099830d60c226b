package profile_test

import (
	"context"
	"testing"
	"time"

	"reelfeed/event"
	"reelfeed/internal/testenv"
	"reelfeed/profile"
)

func TestTmpLayout(t *testing.T) {
	client, prefix := testenv.Redis(t)
	s := profile.NewRedis(client, prefix, profile.DefaultConfig())
	now := time.Now()
	s.Apply(context.Background(), []event.Event{
		{ID: "1", UserID: "ann", VideoID: "v1", Type: event.Like, TS: now, Tags: []string{"x", "y"}, Category: "pets", UploaderID: "bob"},
		{ID: "2", UserID: "ann", VideoID: "v2", Type: event.Impression, TS: now.Add(-time.Minute)},
	})
	h, _ := client.HGetAll(context.Background(), prefix+"u:{ann}:p").Result()
	for k, v := range h {
		t.Logf("%-8s %q", k, v)
	}
	d, _ := client.HGetAll(context.Background(), prefix+"u:{ann}:d").Result()
	t.Logf("dedupe: %v", d)
	ttl, _ := client.PTTL(context.Background(), prefix+"u:{ann}:d").Result()
	t.Logf("ttl d: %v", ttl)
}
