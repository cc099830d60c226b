package profile

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"reelfeed/internal/testenv"
)

// TestRunScriptsFallsBackWhenNotCached uses a script no server has seen (a
// random comment changes its digest), so the pipelined EVALSHA answers
// NOSCRIPT and the call must be re-sent with EVAL — as after a Redis
// restart or on a new cluster node.
func TestRunScriptsFallsBackWhenNotCached(t *testing.T) {
	client, prefix := testenv.Redis(t)
	ctx := context.Background()
	script := redis.NewScript("-- " + testenv.RandomID() + "\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")
	calls := []scriptCall{
		{keys: []string{prefix + "a"}, args: []any{2}},
		{keys: []string{prefix + "a"}, args: []any{3}},
		{keys: []string{prefix + "b"}, args: []any{7}},
	}
	for round, want := range [][]int64{{2, 5, 7}, {7, 10, 14}} {
		got, err := runScripts(ctx, client, script, calls)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("round %d: results %v, want %v (each call run exactly once)", round, got, want)
				break
			}
		}
	}
}

// TestRunScriptsReportsScriptErrors checks a failing call surfaces its
// error while the others still run.
func TestRunScriptsReportsScriptErrors(t *testing.T) {
	client, prefix := testenv.Redis(t)
	script := redis.NewScript("if ARGV[1] == 'bad' then return redis.error_reply('boom') end return 1")
	got, err := runScripts(context.Background(), client, script, []scriptCall{
		{keys: []string{prefix + "x"}, args: []any{"ok"}},
		{keys: []string{prefix + "x"}, args: []any{"bad"}},
		{keys: []string{prefix + "x"}, args: []any{"ok"}},
	})
	if err == nil || got[0] != 1 || got[1] != 0 || got[2] != 1 {
		t.Errorf("runScripts = %v, %v; want [1 0 1] and the script's error", got, err)
	}
}
