package catalog

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// esExchange is one request the fake cluster expects, in order, and its
// answer. Response bodies follow the Elasticsearch 7 reference.
type esExchange struct {
	method, path string // path without the query string
	body         string // expected body, compared as JSON (NDJSON line by line for _bulk); "" skips the check
	golden       string // testdata file holding the expected body, instead of body
	status       int
	response     string
	delay        time.Duration // answer this late, unless the client gives up first
}

// fakeES plays an Elasticsearch 7 node: it answers HEAD / health checks
// itself and every other request from its script, checking method, path
// and body. Requests that do not match the script fail the test.
type fakeES struct {
	t   *testing.T
	srv *httptest.Server

	mu     sync.Mutex
	script []esExchange
	next   int
	// onBulk, when set, answers every POST /_bulk instead of the script,
	// for tests where several bulk processors commit concurrently.
	onBulk func(body []byte) (int, string)
}

func newFakeES(t *testing.T, script ...esExchange) *fakeES {
	t.Helper()
	f := &fakeES{t: t, script: script}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() {
		f.srv.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.next < len(f.script) {
			t.Errorf("fake elasticsearch: %d expected requests never came, first: %s %s",
				len(f.script)-f.next, f.script[f.next].method, f.script[f.next].path)
		}
	})
	return f
}

func (f *fakeES) expect(ex ...esExchange) {
	f.mu.Lock()
	f.script = append(f.script, ex...)
	f.mu.Unlock()
}

func (f *fakeES) setBulkHandler(h func(body []byte) (int, string)) {
	f.mu.Lock()
	f.onBulk = h
	f.mu.Unlock()
}

// pending is how many scripted requests have not arrived yet.
func (f *fakeES) pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.script) - f.next
}

func (f *fakeES) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodHead && r.URL.Path == "/" {
		w.WriteHeader(http.StatusOK)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		f.t.Errorf("fake elasticsearch: reading body: %v", err)
		return
	}
	f.mu.Lock()
	if f.onBulk != nil && r.Method == http.MethodPost && r.URL.Path == "/_bulk" {
		h := f.onBulk
		f.mu.Unlock()
		status, resp := h(body)
		writeES(w, status, resp)
		return
	}
	if f.next >= len(f.script) {
		f.mu.Unlock()
		f.t.Errorf("fake elasticsearch: unexpected request %s %s %s", r.Method, r.URL.Path, body)
		writeES(w, http.StatusInternalServerError, esError("unexpected_request", "not in the test script", 500))
		return
	}
	ex := f.script[f.next]
	f.next++
	f.mu.Unlock()

	if r.Method != ex.method || r.URL.Path != ex.path {
		f.t.Errorf("fake elasticsearch: got %s %s, want %s %s", r.Method, r.URL.Path, ex.method, ex.path)
	}
	want := ex.body
	if ex.golden != "" {
		raw, err := os.ReadFile(filepath.Join("testdata", ex.golden))
		if err != nil {
			f.t.Errorf("fake elasticsearch: %v", err)
		}
		want = string(raw)
	}
	if want != "" {
		if r.URL.Path == "/_bulk" {
			if msg := diffNDJSON(body, []byte(want)); msg != "" {
				f.t.Errorf("fake elasticsearch: %s %s body: %s", r.Method, r.URL.Path, msg)
			}
		} else if msg := diffJSON(body, []byte(want)); msg != "" {
			f.t.Errorf("fake elasticsearch: %s %s body: %s", r.Method, r.URL.Path, msg)
		}
	}
	if ex.delay > 0 {
		select {
		case <-time.After(ex.delay):
		case <-r.Context().Done():
			return
		}
	}
	writeES(w, ex.status, ex.response)
}

func writeES(w http.ResponseWriter, status int, body string) {
	if body != "" {
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// diffJSON compares two JSON documents by value; "" means equal.
func diffJSON(got, want []byte) string {
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		return fmt.Sprintf("got invalid JSON %q: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		return fmt.Sprintf("want invalid JSON %q: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		return fmt.Sprintf("\n got: %s\nwant: %s", compactJSON(got), compactJSON(want))
	}
	return ""
}

func diffNDJSON(got, want []byte) string {
	g, w := ndjsonLines(got), ndjsonLines(want)
	if len(g) != len(w) {
		return fmt.Sprintf("got %d lines, want %d:\n got: %s\nwant: %s", len(g), len(w), got, want)
	}
	for i := range g {
		if msg := diffJSON([]byte(g[i]), []byte(w[i])); msg != "" {
			return fmt.Sprintf("line %d: %s", i+1, msg)
		}
	}
	return ""
}

func ndjsonLines(b []byte) []string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			lines = append(lines, line)
		}
	}
	return lines
}

func mustJSONValue(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func compactJSON(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return string(b)
	}
	return buf.String()
}

// Response bodies, shaped as in the Elasticsearch 7 reference.

const esAck = `{"acknowledged":true}`

func esCreateIndexAck(index string) string {
	return fmt.Sprintf(`{"acknowledged":true,"shards_acknowledged":true,"index":%q}`, index)
}

func esError(typ, reason string, status int) string {
	return fmt.Sprintf(`{"error":{"root_cause":[{"type":%q,"reason":%q}],"type":%q,"reason":%q},"status":%d}`,
		typ, reason, typ, reason, status)
}

func esIndexExistsError(index string) string {
	return fmt.Sprintf(`{"error":{"root_cause":[{"type":"resource_already_exists_exception","reason":"index [%[1]s/2Fq6aRxnQjSRnKMO0sfNcQ] already exists","index_uuid":"2Fq6aRxnQjSRnKMO0sfNcQ","index":%[1]q}],"type":"resource_already_exists_exception","reason":"index [%[1]s/2Fq6aRxnQjSRnKMO0sfNcQ] already exists","index_uuid":"2Fq6aRxnQjSRnKMO0sfNcQ","index":%[1]q},"status":400}`, index)
}

func esAliasMissing(alias string) string {
	return fmt.Sprintf(`{"error":"alias [%s] missing","status":404}`, alias)
}

func esAliasesNotFound(alias string) string {
	return fmt.Sprintf(`{"error":{"root_cause":[{"type":"aliases_not_found_exception","reason":"aliases [%[1]s] missing","resource.type":"aliases","resource.id":%[1]q}],"type":"aliases_not_found_exception","reason":"aliases [%[1]s] missing","resource.type":"aliases","resource.id":%[1]q},"status":404}`, alias)
}

// esAliasTargets answers GET /_alias/{alias}.
func esAliasTargets(alias string, indices ...string) string {
	parts := make([]string, len(indices))
	for i, idx := range indices {
		parts[i] = fmt.Sprintf(`%q:{"aliases":{%q:{}}}`, idx, alias)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// esMapping answers GET /{index}/_mapping with the given field types.
func esMapping(index string, types map[string]string) string {
	props := map[string]any{}
	for f, t := range types {
		props[f] = map[string]any{"type": t}
	}
	b, _ := json.Marshal(map[string]any{index: map[string]any{"mappings": map[string]any{"dynamic": "strict", "properties": props}}})
	return string(b)
}

// esSearchHits answers a sorted search with _source disabled: ids only.
func esSearchHits(index string, ids ...string) string {
	hits := make([]string, len(ids))
	for i, id := range ids {
		hits[i] = fmt.Sprintf(`{"_index":%q,"_type":"_doc","_id":%q,"_score":null,"sort":[0.9,1714557600000,%q]}`, index, id, id)
	}
	return fmt.Sprintf(`{"took":3,"timed_out":false,"_shards":{"total":1,"successful":1,"skipped":0,"failed":0},"hits":{"max_score":null,"hits":[%s]}}`,
		strings.Join(hits, ","))
}

// esBulkItem is one entry of a bulk response's items array.
func esBulkItem(action, index, id string, status int) string {
	switch {
	case status >= 200 && status <= 299:
		result := map[string]string{"index": "created", "delete": "deleted"}[action]
		return fmt.Sprintf(`{%q:{"_index":%q,"_type":"_doc","_id":%q,"_version":1,"result":%q,"_shards":{"total":2,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":%d}}`,
			action, index, id, result, status)
	case status == 404 && action == "delete":
		return fmt.Sprintf(`{"delete":{"_index":%q,"_type":"_doc","_id":%q,"_version":1,"result":"not_found","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":1,"_primary_term":1,"status":404}}`,
			index, id)
	case status == 409:
		return fmt.Sprintf(`{%q:{"_index":%q,"_type":"_doc","_id":%q,"status":409,"error":{"type":"version_conflict_engine_exception","reason":"[%s]: version conflict, current version [7] is higher than the one provided [3]","index_uuid":"2Fq6aRxnQjSRnKMO0sfNcQ","shard":"0","index":%q}}}`,
			action, index, id, id, index)
	case status == 429:
		return fmt.Sprintf(`{%q:{"_index":%q,"_type":"_doc","_id":%q,"status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation [coordinating_and_primary_bytes=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=104, max_coordinating_and_primary_bytes=107374182]"}}}`,
			action, index, id)
	default:
		return fmt.Sprintf(`{%q:{"_index":%q,"_type":"_doc","_id":%q,"status":%d,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [quality] of type [float] in document with id '%s'","caused_by":{"type":"number_format_exception","reason":"For input string: \"high\""}}}}`,
			action, index, id, status, id)
	}
}

func esBulkResponse(items ...string) string {
	errs := false
	for _, it := range items {
		if strings.Contains(it, `"error"`) {
			errs = true
		}
	}
	return fmt.Sprintf(`{"took":30,"errors":%t,"items":[%s]}`, errs, strings.Join(items, ","))
}

// bulkActions lists (action, _id) of every action line in a bulk body.
func bulkActions(t *testing.T, body []byte) [][2]string {
	t.Helper()
	var out [][2]string
	lines := ndjsonLines(body)
	for i := 0; i < len(lines); i++ {
		var meta map[string]struct {
			ID string `json:"_id"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &meta); err != nil {
			t.Errorf("bulk line %d: %v", i+1, err)
			return out
		}
		for action, m := range meta {
			out = append(out, [2]string{action, m.ID})
			if action == "index" || action == "create" || action == "update" {
				i++ // the document line
			}
		}
	}
	return out
}

// esBulkAllOK answers a bulk body with success for every action.
func esBulkAllOK(t *testing.T, index string, body []byte) string {
	var items []string
	for _, a := range bulkActions(t, body) {
		items = append(items, esBulkItem(a[0], index, a[1], map[string]int{"index": 201, "delete": 200}[a[0]]))
	}
	return esBulkResponse(items...)
}
