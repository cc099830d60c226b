package rank

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Sample is one labelled training example: the features logged with an
// impression, and whether the user went on to engage with the video.
type Sample struct {
	UserID    string    `json:"user_id"`
	VideoID   string    `json:"video_id"`
	RequestID string    `json:"request_id,omitempty"`
	TS        time.Time `json:"ts"`    // impression time
	Label     float32   `json:"label"` // 1 positive, 0 negative
	// Reason is the event type that labelled the sample, or ReasonTimeout
	// when the window closed without one.
	Reason   string          `json:"reason"`
	Features json.RawMessage `json:"features"`
}

// ReasonTimeout labels a sample whose window closed with no labelling event.
const ReasonTimeout = "timeout"

// SampleStore keeps samples durably in append-only JSON-lines files, one
// per UTC day of impression time (<dir>/YYYY-MM-DD.jsonl), so old days can
// be dropped whole. Appends are fsynced; a line torn by a crash is skipped
// on read, and the next append starts on a fresh line.
//
// It is safe for concurrent use within a process. Several processes may
// append to the same directory: each batch per file is one O_APPEND write.
type SampleStore struct {
	dir string
	mu  sync.Mutex
}

const sampleFileLayout = "2006-01-02"

// OpenSampleStore opens (creating if needed) a sample directory.
func OpenSampleStore(dir string) (*SampleStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("rank: sample store: %w", err)
	}
	return &SampleStore{dir: dir}, nil
}

// Dir returns the store's directory.
func (s *SampleStore) Dir() string { return s.dir }

// Append stores samples durably: when it returns nil, they survive a crash.
func (s *SampleStore) Append(ctx context.Context, samples []Sample) error {
	if len(samples) == 0 {
		return nil
	}
	byDay := map[string]*bytes.Buffer{}
	for i := range samples {
		sm := &samples[i]
		if len(sm.Features) == 0 || !json.Valid(sm.Features) {
			return fmt.Errorf("rank: sample %d (%s/%s) has no valid features", i, sm.UserID, sm.VideoID)
		}
		day := sm.TS.UTC().Format(sampleFileLayout)
		buf := byDay[day]
		if buf == nil {
			buf = &bytes.Buffer{}
			byDay[day] = buf
		}
		line, err := json.Marshal(sm)
		if err != nil {
			return fmt.Errorf("rank: encode sample: %w", err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	days := make([]string, 0, len(byDay))
	for d := range byDay {
		days = append(days, d)
	}
	slices.Sort(days)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, day := range days {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.appendFile(filepath.Join(s.dir, day+".jsonl"), byDay[day].Bytes()); err != nil {
			return err
		}
	}
	return nil
}

func (s *SampleStore) appendFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("rank: sample store: %w", err)
	}
	defer f.Close()
	// A crash may have left a torn last line: start on a fresh one, so
	// only the torn line is lost, not the first of this batch too.
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], st.Size()-1); err == nil && last[0] != '\n' {
			data = append([]byte{'\n'}, data...)
		}
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("rank: sample store: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("rank: sample store: %w", err)
	}
	return nil
}

// ReadStats counts what Read skipped.
type ReadStats struct {
	Files   int
	Samples int
	Corrupt int // unparsable lines (torn writes)
}

// Read returns every stored sample with TS >= since (zero: all), oldest
// first.
func (s *SampleStore) Read(ctx context.Context, since time.Time) ([]Sample, ReadStats, error) {
	var st ReadStats
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, st, fmt.Errorf("rank: sample store: %w", err)
	}
	sinceDay := ""
	if !since.IsZero() {
		sinceDay = since.UTC().Format(sampleFileLayout)
	}
	var out []Sample
	for _, e := range entries {
		day, ok := strings.CutSuffix(e.Name(), ".jsonl")
		if !ok || e.IsDir() {
			continue
		}
		if _, err := time.Parse(sampleFileLayout, day); err != nil || day < sinceDay {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, st, err
		}
		st.Files++
		out, err = readSampleFile(filepath.Join(s.dir, e.Name()), since, out, &st)
		if err != nil {
			return nil, st, err
		}
	}
	slices.SortStableFunc(out, func(a, b Sample) int { return a.TS.Compare(b.TS) })
	st.Samples = len(out)
	return out, st, nil
}

func readSampleFile(path string, since time.Time, out []Sample, st *ReadStats) ([]Sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return out, fmt.Errorf("rank: sample store: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<16)
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			var sm Sample
			if jerr := json.Unmarshal(line, &sm); jerr != nil || len(sm.Features) == 0 {
				st.Corrupt++
			} else if since.IsZero() || !sm.TS.Before(since) {
				out = append(out, sm)
			}
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("rank: sample store: %w", err)
		}
	}
}

// Prune deletes the files of days entirely before before and returns how
// many it deleted.
func (s *SampleStore) Prune(ctx context.Context, before time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return 0, fmt.Errorf("rank: sample store: %w", err)
	}
	cut := before.UTC().Format(sampleFileLayout)
	n := 0
	for _, e := range entries {
		day, ok := strings.CutSuffix(e.Name(), ".jsonl")
		if !ok || e.IsDir() {
			continue
		}
		if _, err := time.Parse(sampleFileLayout, day); err != nil || day >= cut {
			continue
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
		if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil {
			return n, fmt.Errorf("rank: sample store: %w", err)
		}
		n++
	}
	return n, nil
}
