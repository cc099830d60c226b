package sim

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"reelfeed/event"
	"reelfeed/sim/world"
)

// Export file names in the directory, as `reelfeed import` expects them.
const (
	VideosFile = "videos.jsonl"
	UsersFile  = "users.jsonl"
	EventsFile = "events.jsonl"
)

// exporter writes a world as JSONL files of the API's objects: events as
// they happen, videos and users (which grow during the run) at the end.
type exporter struct {
	dir    string
	events *jsonlFile
}

func newExporter(dir string) (*exporter, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sim: export: %w", err)
	}
	f, err := createJSONL(filepath.Join(dir, EventsFile))
	if err != nil {
		return nil, err
	}
	return &exporter{dir: dir, events: f}, nil
}

func (e *exporter) writeEvents(evs []event.Event) error {
	for i := range evs {
		if err := e.events.write(&evs[i]); err != nil {
			return err
		}
	}
	return nil
}

// finish writes videos and users and closes every file.
func (e *exporter) finish(w *world.World) error {
	err := e.events.close()
	if err == nil {
		err = writeJSONL(filepath.Join(e.dir, VideosFile), len(w.Videos), func(i int) any { return &w.Videos[i].Meta })
	}
	if err == nil {
		err = writeJSONL(filepath.Join(e.dir, UsersFile), len(w.Users), func(i int) any { return &w.Users[i].Meta })
	}
	return err
}

// abort closes the events file after a failure.
func (e *exporter) abort() { _ = e.events.close() }

type jsonlFile struct {
	path string
	f    *os.File
	bw   *bufio.Writer
	enc  *json.Encoder
}

func createJSONL(path string) (*jsonlFile, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("sim: export: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<16)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &jsonlFile{path: path, f: f, bw: bw, enc: enc}, nil
}

func (j *jsonlFile) write(v any) error {
	if err := j.enc.Encode(v); err != nil {
		return fmt.Errorf("sim: export %s: %w", j.path, err)
	}
	return nil
}

func (j *jsonlFile) close() error {
	if j.f == nil {
		return nil
	}
	err := errors.Join(j.bw.Flush(), j.f.Close())
	j.f = nil
	if err != nil {
		return fmt.Errorf("sim: export %s: %w", j.path, err)
	}
	return nil
}

func writeJSONL(path string, n int, item func(i int) any) error {
	f, err := createJSONL(path)
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := f.write(item(i)); err != nil {
			f.close()
			return err
		}
	}
	return f.close()
}
