package rank

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func storeSample(i int, ts time.Time) Sample {
	return Sample{UserID: "u", VideoID: fmt.Sprint("v", i), TS: ts, Label: float32(i % 2), Reason: "complete",
		Features: json.RawMessage(`{"v":1,"user":"u"}`)}
}

func TestSampleStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSampleStore(filepath.Join(t.TempDir(), "samples"))
	if err != nil {
		t.Fatal(err)
	}
	day1 := time.Date(2026, 4, 1, 23, 59, 0, 0, time.UTC)
	day2 := day1.Add(2 * time.Minute)
	// Out of order within and across batches; Read returns time order.
	if err := s.Append(ctx, []Sample{storeSample(2, day2), storeSample(0, day1)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, []Sample{storeSample(1, day1.Add(time.Second))}); err != nil {
		t.Fatal(err)
	}
	got, st, err := s.Read(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].VideoID != "v0" || got[1].VideoID != "v1" || got[2].VideoID != "v2" || st.Files != 2 {
		t.Fatalf("read %+v (%+v)", got, st)
	}
	if got[1].Label != 1 || string(got[1].Features) != `{"v":1,"user":"u"}` || !got[1].TS.Equal(day1.Add(time.Second)) {
		t.Errorf("sample changed on the way: %+v", got[1])
	}
	if files, _ := filepath.Glob(filepath.Join(s.Dir(), "*.jsonl")); len(files) != 2 {
		t.Errorf("files = %v, want one per UTC day", files)
	}
	since, _, err := s.Read(ctx, day1.Add(time.Second))
	if err != nil || len(since) != 2 || since[0].VideoID != "v1" {
		t.Errorf("read since: %+v, %v", since, err)
	}
}

func TestSampleStoreSurvivesTornWrite(t *testing.T) {
	ctx := context.Background()
	s, _ := OpenSampleStore(t.TempDir())
	ts := time.Date(2026, 4, 2, 8, 0, 0, 0, time.UTC)
	if err := s.Append(ctx, []Sample{storeSample(0, ts)}); err != nil {
		t.Fatal(err)
	}
	// A crash in the middle of the next append leaves half a line.
	path := filepath.Join(s.Dir(), "2026-04-02.jsonl")
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"user_id":"u","video_id":"torn","ts":"2026-04-02T08:0`)
	f.Close()
	if err := s.Append(ctx, []Sample{storeSample(1, ts.Add(time.Second))}); err != nil {
		t.Fatal(err)
	}
	got, st, err := s.Read(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].VideoID != "v0" || got[1].VideoID != "v1" || st.Corrupt != 1 {
		t.Fatalf("after a torn write read %+v (%+v), want v0 and v1 and one corrupt line", got, st)
	}
}

func TestSampleStoreRejectsSamplesWithoutFeatures(t *testing.T) {
	s, _ := OpenSampleStore(t.TempDir())
	bad := storeSample(0, time.Now())
	bad.Features = nil
	if err := s.Append(context.Background(), []Sample{bad}); err == nil {
		t.Error("sample without features accepted")
	}
}

func TestSampleStorePrune(t *testing.T) {
	ctx := context.Background()
	s, _ := OpenSampleStore(t.TempDir())
	base := time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)
	for d := range 5 {
		if err := s.Append(ctx, []Sample{storeSample(d, base.AddDate(0, 0, d))}); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(s.Dir(), "notes.txt"), []byte("keep me"), 0o644)
	n, err := s.Prune(ctx, base.AddDate(0, 0, 3))
	if err != nil || n != 3 {
		t.Fatalf("pruned %d, %v; want 3 days", n, err)
	}
	got, _, _ := s.Read(ctx, time.Time{})
	if len(got) != 2 || got[0].VideoID != "v3" {
		t.Errorf("left %+v", got)
	}
	if _, err := os.Stat(filepath.Join(s.Dir(), "notes.txt")); err != nil {
		t.Error("prune deleted a file that is not a sample file")
	}
}
