package profile

import (
	"fmt"
	"strings"
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"reelfeed/internal/testenv"
)

func TestTmpScriptOverhead(t *testing.T) {
	client, prefix := testenv.Redis(t)
	ctx := context.Background()
	args := make([]any, 22)
	for i := range args {
		args[i] = "argument-value"
	}
	for name, src := range map[string]string{
		"return1":     "return 1",
		"6calls":      "for i=1,6 do redis.call('EXISTS', KEYS[1]) end return 1",
		"6writes":     "redis.call('HMGET', KEYS[1], 'a','b','c','d','e','f','g','h','i'); redis.call('HMGET', KEYS[2], 'x'); redis.call('HSET', KEYS[2], 'x', 1); redis.call('HSET', KEYS[1], 'a', 1, 'b', 2, 'c', 3, 'd', 4, 'e', 5, 'f', 6, 'g', 7, 'h', 8, 'i', 9); redis.call('PEXPIRE', KEYS[1], 100000); redis.call('PEXPIRE', KEYS[2], 100000) return 1",
		"applyScript": "",
	} {
		if src == "" {
			continue
		}
		script := redis.NewScript(src)
		script.Load(ctx, client)
		for round := range 2 {
			calls := make([]scriptCall, 2000)
			for i := range calls {
				calls[i] = scriptCall{keys: []string{prefix + "k" + string(rune('a'+i%20)), prefix + "d" + string(rune('a'+i%20))}, args: args}
			}
			start := time.Now()
			if _, err := runScripts(ctx, client, script, calls); err != nil {
				t.Fatal(err)
			}
			if round == 1 {
				t.Logf("%-8s %.1f µs/call wall", name, time.Since(start).Seconds()/2000*1e6)
			}
		}
	}
}

func TestTmpApplyScript(t *testing.T) {
	client, prefix := testenv.Redis(t)
	ctx := context.Background()
	r := NewRedis(client, prefix, DefaultConfig())
	w := newTmpEvents(4000)
	for round := range 2 {
		evs := w[round*2000 : (round+1)*2000]
		start := time.Now()
		if _, err := r.Apply(ctx, evs); err != nil {
			t.Fatal(err)
		}
		t.Logf("apply round %d: %.1f µs/event wall", round, time.Since(start).Seconds()/2000*1e6)
	}
}

func TestTmpBisect(t *testing.T) {
	client, prefix := testenv.Redis(t)
	ctx := context.Background()
	r := NewRedis(client, prefix, DefaultConfig())
	w := newTmpEvents(4000)
	r.Apply(ctx, w[:2000])
	markers := []string{
		"if #fresh == 0 then return 0 end",
		"for i, f in ipairs(fields) do cur[f] = vals[i] end",
		"local marks = {}",
		"redis.call('HSET', D, unpack(marks))",
		"redis.call('PEXPIRE', D, ttl)",
		"local over = nil",
		"redis.call('HSET', P, unpack(args))",
		"redis.call('PEXPIRE', P, ttl)\nreturn #fresh",
	}
	best := make([]float64, len(markers))
	for rep := range 5 {
		for vi, m := range markers {
			for i := range w {
				w[i].ID = fmt.Sprintf("r%d-v%d-%d", rep, vi, i)
			}
			src := applySource
			if !strings.HasPrefix(m, "redis.call('PEXPIRE', P") {
				src = strings.Replace(applySource, m, m+"\nif ARGV[1] then return 1 end", 1)
			}
			script := redis.NewScript(scriptLib + src)
			calls := make([]scriptCall, 0, 1000)
			for i := 2000; i < 3000; i++ {
				calls = append(calls, scriptCall{keys: r.keys(w[i].UserID), args: r.applyArgs(w, []int{i})})
			}
			runScripts(ctx, client, script, calls[:10])
			start := time.Now()
			if _, err := runScripts(ctx, client, script, calls[10:]); err != nil {
				t.Fatal(err)
			}
			us := time.Since(start).Seconds() / 990 * 1e6
			if rep == 0 || us < best[vi] {
				best[vi] = us
			}
		}
	}
	for vi, m := range markers {
		t.Logf("%6.1f µs/call after %q", best[vi], strings.SplitN(m, "\n", 2)[0])
	}
}
