package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"reelfeed/catalog"
)

// ImportOptions says what to load and where.
type ImportOptions struct {
	BaseURL string
	Token   string
	Videos  string // JSONL of POST /v1/videos objects
	Users   string // JSONL of PUT /v1/users objects (with user_id)
	Events  string // JSONL of POST /v1/events objects
	Batch   int
	// SkipInvalid imports the valid lines and reports the invalid ones,
	// instead of refusing the whole file.
	SkipInvalid bool
	Progress    io.Writer // nil: no progress bar
	Client      *http.Client
	Limits      EventLimits
}

// ImportResult counts what was loaded.
type ImportResult struct {
	Videos  int         `json:"videos"`
	Users   int         `json:"users"`
	Events  int         `json:"events"`
	Skipped int         `json:"skipped"`
	Invalid []LineError `json:"invalid,omitempty"`
}

// LineError names a bad line of an input file.
type LineError struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Err  string `json:"error"`
}

func (e LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Err) }

// maxReportedLines bounds how many bad lines an import error lists.
const maxReportedLines = 20

type jsonlLine struct {
	no   int
	data []byte
}

// Import loads videos, then users, then events (events are enriched from
// the catalog, so videos go first) through the HTTP API. Files are checked
// line by line before anything is sent: an invalid line stops the import
// with its file and line number unless SkipInvalid is set. A batch the
// server refuses is reported with the lines it came from; what the server
// accepted before stays accepted.
func Import(ctx context.Context, o ImportOptions) (ImportResult, error) {
	var res ImportResult
	if o.Batch <= 0 || o.Batch > 1000 {
		o.Batch = 1000
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 60 * time.Second}
	}
	if o.Limits.MaxBatch == 0 {
		o.Limits = EventLimits{MaxBatch: 1000, MaxFutureSkew: 5 * time.Minute}
	}
	steps := []struct {
		path  string
		check func([]byte) string
		send  func(context.Context, []jsonlLine) error
		count *int
	}{
		{o.Videos, checkVideoLine, o.sendVideos, &res.Videos},
		{o.Users, checkUserLine, o.sendUsers, &res.Users},
		{o.Events, o.checkEventLine, o.sendEvents, &res.Events},
	}
	for _, st := range steps {
		if st.path == "" {
			continue
		}
		lines, invalid, err := readJSONL(st.path, st.check)
		if err != nil {
			return res, err
		}
		if len(invalid) > 0 {
			res.Invalid = append(res.Invalid, invalid...)
			if !o.SkipInvalid {
				return res, invalidLinesError(invalid)
			}
			res.Skipped += len(invalid)
		}
		var bar *progressbar.ProgressBar
		if o.Progress != nil {
			bar = progressbar.NewOptions(len(lines),
				progressbar.OptionSetWriter(o.Progress),
				progressbar.OptionSetDescription("import "+st.path),
				progressbar.OptionShowCount(),
				progressbar.OptionShowIts(),
				progressbar.OptionSetItsString("lines"),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(o.Progress) }),
			)
		}
		for start := 0; start < len(lines); start += o.Batch {
			end := min(start+o.Batch, len(lines))
			if err := st.send(ctx, lines[start:end]); err != nil {
				return res, fmt.Errorf("%s: %w (lines before %d were imported)", st.path, err, lines[start].no)
			}
			*st.count += end - start
			if bar != nil {
				_ = bar.Add(end - start)
			}
		}
		if bar != nil {
			_ = bar.Finish()
		}
	}
	return res, nil
}

func invalidLinesError(invalid []LineError) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%d invalid line(s), nothing from this file was imported (use --skip-invalid to import the rest):", len(invalid))
	for i, e := range invalid {
		if i == maxReportedLines {
			fmt.Fprintf(&b, "\n  … and %d more", len(invalid)-maxReportedLines)
			break
		}
		b.WriteString("\n  " + e.Error())
	}
	return fmt.Errorf("%s", b.String())
}

// readJSONL reads non-empty lines, checking each; it returns valid lines
// and the invalid ones with their numbers.
func readJSONL(path string, check func([]byte) string) ([]jsonlLine, []LineError, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var lines []jsonlLine
	var invalid []LineError
	for no := 1; sc.Scan(); no++ {
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		data := append([]byte(nil), raw...)
		if msg := check(data); msg != "" {
			invalid = append(invalid, LineError{File: path, Line: no, Err: msg})
			continue
		}
		lines = append(lines, jsonlLine{no: no, data: data})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return lines, invalid, nil
}

func describeFields(bad map[string]string) string {
	parts := make([]string, 0, len(bad))
	for f, m := range bad {
		parts = append(parts, f+": "+m)
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

func strictDecode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s", describeJSONError(err))
	}
	return nil
}

func checkVideoLine(data []byte) string {
	var v catalog.Video
	if err := strictDecode(data, &v); err != nil {
		return err.Error()
	}
	v.Normalize(time.Now())
	if bad := v.Validate(); len(bad) > 0 {
		return describeFields(bad)
	}
	return ""
}

func checkUserLine(data []byte) string {
	var u catalog.User
	if err := strictDecode(data, &u); err != nil {
		return err.Error()
	}
	u.Normalize()
	if bad := u.Validate(); len(bad) > 0 {
		return describeFields(bad)
	}
	return ""
}

func (o ImportOptions) checkEventLine(data []byte) string {
	_, bad := decodeOne(data, time.Now(), o.Limits)
	if len(bad) > 0 {
		return describeFields(bad)
	}
	return ""
}

var batchIndex = regexp.MustCompile(`^(?:videos|events)\[(\d+)\]\.?(.*)$`)

// post sends body and maps a 400's per-item fields back to line numbers.
func (o ImportOptions) post(ctx context.Context, method, path string, body []byte, lines []jsonlLine) error {
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(o.BaseURL, "/")+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+o.Token)
		resp, err := o.Client.Do(req)
		if err != nil {
			if attempt < 3 {
				time.Sleep(time.Duration(attempt+1) * 500 * time.Millisecond)
				continue
			}
			return err
		}
		respBody, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		switch {
		case resp.StatusCode < 300:
			return nil
		case (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && attempt < 10:
			wait := time.Second
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		var e struct {
			Error struct {
				Code    string            `json:"code"`
				Message string            `json:"message"`
				Fields  map[string]string `json:"fields"`
			} `json:"error"`
		}
		_ = json.Unmarshal(respBody, &e)
		var b strings.Builder
		fmt.Fprintf(&b, "server answered %d %s: %s", resp.StatusCode, e.Error.Code, e.Error.Message)
		for f, m := range e.Error.Fields {
			if mm := batchIndex.FindStringSubmatch(f); mm != nil {
				if i, _ := strconv.Atoi(mm[1]); i < len(lines) {
					fmt.Fprintf(&b, "\n  line %d: %s: %s", lines[i].no, mm[2], m)
					continue
				}
			}
			fmt.Fprintf(&b, "\n  %s: %s", f, m)
		}
		return fmt.Errorf("%s", b.String())
	}
}

func joinRaw(key string, lines []jsonlLine) []byte {
	var b bytes.Buffer
	b.WriteString(`{"` + key + `":[`)
	for i, l := range lines {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(l.data)
	}
	b.WriteString("]}")
	return b.Bytes()
}

func (o ImportOptions) sendVideos(ctx context.Context, lines []jsonlLine) error {
	return o.post(ctx, http.MethodPost, "/v1/videos", joinRaw("videos", lines), lines)
}

func (o ImportOptions) sendEvents(ctx context.Context, lines []jsonlLine) error {
	return o.post(ctx, http.MethodPost, "/v1/events", joinRaw("events", lines), lines)
}

func (o ImportOptions) sendUsers(ctx context.Context, lines []jsonlLine) error {
	return parallel(ctx, len(lines), 16, func(ctx context.Context, i int) error {
		var u struct {
			ID string `json:"user_id"`
		}
		_ = json.Unmarshal(lines[i].data, &u)
		err := o.post(ctx, http.MethodPut, "/v1/users/"+url.PathEscape(u.ID), lines[i].data, lines[i:i+1])
		if err != nil {
			return fmt.Errorf("line %d: %w", lines[i].no, err)
		}
		return nil
	})
}
