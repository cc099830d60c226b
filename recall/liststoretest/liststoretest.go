// Package liststoretest is the conformance suite every recall.ListStore
// backend runs, so the memory and Redis stores behave the same to the jobs
// that write lists and the branches that read them.
package liststoretest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"reelfeed/recall"
)

// Run checks the backend newStore returns against the ListStore contract.
// newStore is called once per subtest and must return an empty store
// isolated from every other (the Redis suite uses a fresh key prefix).
func Run(t *testing.T, newStore func(t *testing.T) recall.ListStore) {
	open := func(t *testing.T) recall.ListStore {
		t.Helper()
		s := newStore(t)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	ctx := context.Background()

	t.Run("MissingListIsEmpty", func(t *testing.T) {
		s := open(t)
		got, err := s.Get(ctx, "hot", "nowhere", 10)
		if err != nil || len(got) != 0 {
			t.Fatalf("Get missing = %v, %v; want empty, nil", got, err)
		}
	})

	t.Run("RanksByScoreKeepingWriteOrderOnTies", func(t *testing.T) {
		s := open(t)
		put(t, s, "hot", "us", []recall.Scored{entry("c", 1), entry("a", 3), entry("t1", 2), entry("t2", 2), entry("b", -1)})
		want := []recall.Scored{entry("a", 3), entry("t1", 2), entry("t2", 2), entry("c", 1), entry("b", -1)}
		expect(t, s, "hot", "us", 0, want)
	})

	t.Run("GetReturnsTheFirstN", func(t *testing.T) {
		s := open(t)
		list := []recall.Scored{entry("a", 5), entry("b", 4), entry("c", 3)}
		put(t, s, "hot", "k", list)
		for _, tc := range []struct {
			n    int
			want []recall.Scored
		}{
			{n: 1, want: list[:1]},
			{n: 2, want: list[:2]},
			{n: 3, want: list},
			{n: 10, want: list},
			{n: 0, want: list},
			{n: -1, want: list},
		} {
			t.Run(fmt.Sprint("n=", tc.n), func(t *testing.T) { expect(t, s, "hot", "k", tc.n, tc.want) })
		}
	})

	t.Run("PutReplacesTheWholeList", func(t *testing.T) {
		s := open(t)
		put(t, s, "i2i", "v1", []recall.Scored{entry("a", 3), entry("b", 2), entry("c", 1)})
		put(t, s, "i2i", "v1", []recall.Scored{entry("z", 0.5)})
		expect(t, s, "i2i", "v1", 0, []recall.Scored{entry("z", 0.5)})
	})

	t.Run("PutEmptyDeletes", func(t *testing.T) {
		s := open(t)
		put(t, s, "i2i", "v1", []recall.Scored{entry("a", 3)})
		put(t, s, "i2i", "v1", nil)
		expect(t, s, "i2i", "v1", 0, nil)
	})

	t.Run("DuplicateIDsKeepTheHighestScore", func(t *testing.T) {
		s := open(t)
		put(t, s, "hot", "k", []recall.Scored{entry("a", 1), entry("b", 2), entry("a", 5), entry("b", 0)})
		expect(t, s, "hot", "k", 0, []recall.Scored{entry("a", 5), entry("b", 2)})
		long := make([]recall.Scored, 0, 100)
		for i := range 50 {
			long = append(long, recall.Scored{ID: fmt.Sprint("v", i), Score: float64(i)})
			long = append(long, recall.Scored{ID: fmt.Sprint("v", i), Score: float64(-i)})
		}
		put(t, s, "hot", "long", long)
		got := get(t, s, "hot", "long", 0)
		if len(got) != 50 || got[0] != (recall.Scored{ID: "v49", Score: 49}) {
			t.Fatalf("long list with duplicates: %d entries, first %v", len(got), got[0])
		}
	})

	t.Run("ScoresAndIDsRoundTripExactly", func(t *testing.T) {
		s := open(t)
		list := []recall.Scored{
			entry("big", math.MaxFloat64), entry("tenth", 0.1), entry("tiny", 5e-324), entry("zero", 0),
			entry("neg", -1.5), entry("ünï:cödé/ id", -math.MaxFloat64),
		}
		put(t, s, "hot", "k", list)
		expect(t, s, "hot", "k", 0, list)
	})

	t.Run("NamespacesAndKeysAreIsolated", func(t *testing.T) {
		s := open(t)
		keys := []string{"", "us", "us:east", "US", "a b", "中文"}
		for i, k := range keys {
			put(t, s, "hot", k, []recall.Scored{entry(fmt.Sprint("hot-", i), 1)})
			put(t, s, "usercf", k, []recall.Scored{entry(fmt.Sprint("cf-", i), 1)})
		}
		for i, k := range keys {
			expect(t, s, "hot", k, 0, []recall.Scored{entry(fmt.Sprint("hot-", i), 1)})
			expect(t, s, "usercf", k, 0, []recall.Scored{entry(fmt.Sprint("cf-", i), 1)})
		}
		expect(t, s, "i2i", "us", 0, nil)
	})

	t.Run("RejectsInvalidInputAndKeepsTheOldList", func(t *testing.T) {
		s := open(t)
		old := []recall.Scored{entry("a", 1)}
		put(t, s, "hot", "k", old)
		for name, items := range map[string][]recall.Scored{
			"empty id":     {entry("", 1)},
			"NaN score":    {entry("a", math.NaN())},
			"+Inf score":   {entry("a", math.Inf(1))},
			"-Inf score":   {entry("b", 2), entry("a", math.Inf(-1))},
			"mixed errors": {entry("ok", 1), entry("", math.NaN())},
		} {
			if err := s.Put(ctx, "hot", "k", items); err == nil {
				t.Errorf("Put(%s) accepted", name)
			}
		}
		expect(t, s, "hot", "k", 0, old)
		for _, ns := range []string{"", "a:b"} {
			if err := s.Put(ctx, ns, "k", old); err == nil {
				t.Errorf("Put accepted namespace %q", ns)
			}
			if _, err := s.Get(ctx, ns, "k", 0); err == nil {
				t.Errorf("Get accepted namespace %q", ns)
			}
		}
	})

	t.Run("DoesNotRetainTheCallersSlice", func(t *testing.T) {
		s := open(t)
		in := []recall.Scored{entry("a", 2), entry("b", 1)}
		put(t, s, "hot", "k", in)
		in[0] = entry("mutated", 100)
		expect(t, s, "hot", "k", 0, []recall.Scored{entry("a", 2), entry("b", 1)})
		got := get(t, s, "hot", "k", 1)
		_ = append(got, entry("appended", 0))
		expect(t, s, "hot", "k", 0, []recall.Scored{entry("a", 2), entry("b", 1)})
	})

	t.Run("GetManyIsAlignedWithKeys", func(t *testing.T) {
		s := open(t)
		put(t, s, "i2i", "a", []recall.Scored{entry("x", 3), entry("y", 2), entry("z", 1)})
		put(t, s, "i2i", "c", []recall.Scored{entry("q", 1)})
		got, err := s.GetMany(ctx, "i2i", []string{"a", "b", "c", "a"}, 2)
		if err != nil {
			t.Fatal(err)
		}
		want := [][]recall.Scored{{entry("x", 3), entry("y", 2)}, nil, {entry("q", 1)}, {entry("x", 3), entry("y", 2)}}
		if len(got) != len(want) {
			t.Fatalf("GetMany returned %d lists, want %d", len(got), len(want))
		}
		for i := range want {
			if !equal(got[i], want[i]) {
				t.Errorf("GetMany[%d] = %v, want %v", i, got[i], want[i])
			}
		}
		if got, err := s.GetMany(ctx, "i2i", nil, 2); err != nil || len(got) != 0 {
			t.Errorf("GetMany(no keys) = %v, %v", got, err)
		}
	})

	t.Run("ReplaceAllDropsKeysNoLongerProduced", func(t *testing.T) {
		s := open(t)
		put(t, s, "hot", "gone", []recall.Scored{entry("a", 1)})
		put(t, s, "hot", "kept", []recall.Scored{entry("a", 1)})
		put(t, s, "hot", "emptied", []recall.Scored{entry("a", 1)})
		put(t, s, "i2i", "gone", []recall.Scored{entry("other-namespace", 1)})
		next := map[string][]recall.Scored{
			"kept":    {entry("b", 2), entry("c", 3)},
			"new":     {entry("d", 1)},
			"emptied": nil,
		}
		if err := s.ReplaceAll(ctx, "hot", maps.All(next)); err != nil {
			t.Fatal(err)
		}
		expect(t, s, "hot", "gone", 0, nil)
		expect(t, s, "hot", "emptied", 0, nil)
		expect(t, s, "hot", "kept", 0, []recall.Scored{entry("c", 3), entry("b", 2)})
		expect(t, s, "hot", "new", 0, []recall.Scored{entry("d", 1)})
		expect(t, s, "i2i", "gone", 0, []recall.Scored{entry("other-namespace", 1)})

		if err := s.ReplaceAll(ctx, "hot", maps.All(map[string][]recall.Scored{})); err != nil {
			t.Fatal(err)
		}
		expect(t, s, "hot", "kept", 0, nil)
		expect(t, s, "hot", "new", 0, nil)
	})

	t.Run("ReplaceAllWithManyKeys", func(t *testing.T) {
		s := open(t)
		const keys = 3000 // several pipeline batches
		next := make(map[string][]recall.Scored, keys)
		for i := range keys {
			next[fmt.Sprint("v", i)] = []recall.Scored{entry(fmt.Sprint("n", i), float64(i)), entry("common", 0)}
		}
		if err := s.ReplaceAll(ctx, "i2i", maps.All(next)); err != nil {
			t.Fatal(err)
		}
		half := make(map[string][]recall.Scored, keys/2)
		for i := 0; i < keys; i += 2 {
			half[fmt.Sprint("v", i)] = next[fmt.Sprint("v", i)]
		}
		if err := s.ReplaceAll(ctx, "i2i", maps.All(half)); err != nil {
			t.Fatal(err)
		}
		for _, i := range []int{0, 1, 1500, 2999, 2998} {
			var want []recall.Scored
			if i%2 == 0 {
				want = []recall.Scored{entry(fmt.Sprint("n", i), float64(i)), entry("common", 0)}
			}
			expect(t, s, "i2i", fmt.Sprint("v", i), 0, want)
		}
	})

	t.Run("ReplaceAllFailingPartWayDeletesNothing", func(t *testing.T) {
		s := open(t)
		put(t, s, "hot", "old", []recall.Scored{entry("a", 1)})
		bad := func(yield func(string, []recall.Scored) bool) {
			if !yield("fine", []recall.Scored{entry("b", 1)}) {
				return
			}
			yield("broken", []recall.Scored{entry("c", math.NaN())})
		}
		if err := s.ReplaceAll(ctx, "hot", bad); err == nil {
			t.Fatal("ReplaceAll accepted a NaN score")
		}
		expect(t, s, "hot", "old", 0, []recall.Scored{entry("a", 1)})
		expect(t, s, "hot", "broken", 0, nil)

		cctx, cancel := context.WithCancel(ctx)
		cancelling := func(yield func(string, []recall.Scored) bool) {
			for i := range 5000 {
				if i == 10 {
					cancel()
				}
				if !yield(fmt.Sprint("k", i), []recall.Scored{entry("x", 1)}) {
					return
				}
			}
		}
		if err := s.ReplaceAll(cctx, "hot", cancelling); !errors.Is(err, context.Canceled) {
			t.Fatalf("ReplaceAll with a cancelled context = %v, want context.Canceled", err)
		}
		expect(t, s, "hot", "old", 0, []recall.Scored{entry("a", 1)})
	})

	t.Run("HonoursCancelledContext", func(t *testing.T) {
		s := open(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Put(cctx, "hot", "k", []recall.Scored{entry("a", 1)}); !errors.Is(err, context.Canceled) {
			t.Errorf("Put = %v, want context.Canceled", err)
		}
		if _, err := s.Get(cctx, "hot", "k", 0); !errors.Is(err, context.Canceled) {
			t.Errorf("Get = %v, want context.Canceled", err)
		}
		if _, err := s.GetMany(cctx, "hot", []string{"k"}, 0); !errors.Is(err, context.Canceled) {
			t.Errorf("GetMany = %v, want context.Canceled", err)
		}
		if err := s.Ping(cctx); err == nil {
			t.Error("Ping with a cancelled context succeeded")
		}
		if err := s.Ping(ctx); err != nil {
			t.Errorf("Ping = %v", err)
		}
	})

	t.Run("ReadersNeverSeeHalfAList", func(t *testing.T) {
		s := open(t)
		const size = 200
		version := func(v int) []recall.Scored {
			out := make([]recall.Scored, size)
			for i := range out {
				out[i] = recall.Scored{ID: fmt.Sprintf("v%d-%d", v, i), Score: float64(v*1000 + size - i)}
			}
			return out
		}
		put(t, s, "hot", "k", version(0))
		rctx, stop := context.WithTimeout(ctx, 400*time.Millisecond)
		defer stop()
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 3 {
			wg.Go(func() {
				for rctx.Err() == nil {
					got, err := s.Get(ctx, "hot", "k", 0)
					if err != nil {
						errs <- err
						return
					}
					if len(got) != size {
						errs <- fmt.Errorf("read a list of %d entries, want %d", len(got), size)
						return
					}
					v := int(got[0].Score) / 1000
					if !equal(got, version(v)) {
						errs <- fmt.Errorf("read a list mixing versions (first entry %v)", got[0])
						return
					}
				}
			})
		}
		for v := 1; rctx.Err() == nil; v++ {
			if err := s.Put(ctx, "hot", "k", version(v%50)); err != nil {
				t.Fatal(err)
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}

func put(t *testing.T, s recall.ListStore, ns, key string, items []recall.Scored) {
	t.Helper()
	if err := s.Put(context.Background(), ns, key, items); err != nil {
		t.Fatalf("Put(%s/%s): %v", ns, key, err)
	}
}

func get(t *testing.T, s recall.ListStore, ns, key string, n int) []recall.Scored {
	t.Helper()
	got, err := s.Get(context.Background(), ns, key, n)
	if err != nil {
		t.Fatalf("Get(%s/%s): %v", ns, key, err)
	}
	return got
}

func expect(t *testing.T, s recall.ListStore, ns, key string, n int, want []recall.Scored) {
	t.Helper()
	if got := get(t, s, ns, key, n); !equal(got, want) {
		t.Errorf("Get(%s/%q, %d) = %v, want %v", ns, key, n, got, want)
	}
}

func equal(a, b []recall.Scored) bool { return slices.Equal(a, b) }

func entry(id string, score float64) recall.Scored { return recall.Scored{ID: id, Score: score} }
