package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"reelfeed/catalog"
	"reelfeed/event"
)

func newTestClient(t *testing.T, h http.HandlerFunc, opts ...Option) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := New(srv.URL, "tok", opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFeedSendsTheQueryAndDecodesItems(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if got := r.Header.Get("Authorization"); got != "Bearer tok" {
			t.Errorf("Authorization = %q", got)
		}
		q := r.URL.Query()
		if r.URL.Path != "/v1/feed" || q.Get("user_id") != "u 1" || q.Get("count") != "7" || q.Get("region") != "br" || q.Get("device") != "ios" {
			t.Errorf("request %s", r.URL)
		}
		w.Write([]byte(`{"request_id":"r1","user_id":"u 1","items":[{"video_id":"v1","branch":"hot","score":0.5,"play_url":"https://cdn/v1","category":"music","uploader_id":"c1"}]}`))
	})
	f, err := c.Feed(context.Background(), FeedQuery{UserID: "u 1", Count: 7, Region: "br", Device: "ios"})
	if err != nil {
		t.Fatal(err)
	}
	if f.RequestID != "r1" || len(f.Items) != 1 || f.Items[0].VideoID != "v1" || f.Items[0].Branch != "hot" {
		t.Fatalf("feed %+v", f)
	}
	if n, err := c.FeedLen(context.Background(), FeedQuery{UserID: "u 1", Count: 7, Region: "br", Device: "ios"}); err != nil || n != 1 {
		t.Fatalf("FeedLen = %d, %v; want 1 item", n, err)
	}
}

func TestErrorsCarryTheAPIErrorShape(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":{"code":"invalid_request","message":"2 invalid events","fields":{"events[1].type":"unknown","events[0].ts":"in the future"}}}`))
	})
	_, err := c.PostEvents(context.Background(), []event.Event{{ID: "e", UserID: "u", VideoID: "v", Type: event.Play, TS: time.Now()}})
	if StatusOf(err) != http.StatusBadRequest {
		t.Fatalf("status of %v = %d", err, StatusOf(err))
	}
	msg := err.Error()
	for _, want := range []string{"POST /v1/events", "400 invalid_request", "2 invalid events", "events[0].ts: in the future; events[1].type: unknown"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
}

func TestRetriesOnlyWhenAskedAndOnlyTransientFailures(t *testing.T) {
	cases := []struct {
		name      string
		status    int
		retries   int
		wantCalls int32
		wantErr   bool
	}{
		{"unavailable then fine", http.StatusServiceUnavailable, 3, 2, false},
		{"rate limited then fine", http.StatusTooManyRequests, 3, 2, false},
		{"no retries for measurements", http.StatusServiceUnavailable, 0, 1, true},
		{"bad request is final", http.StatusBadRequest, 3, 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) == 1 {
					w.Header().Set("Retry-After", "0")
					w.WriteHeader(tc.status)
					return
				}
				w.Write([]byte(`{"upserted":1}`))
			}, WithRetries(tc.retries))
			n, err := c.UpsertVideos(context.Background(), []catalog.Video{{ID: "v1"}})
			if (err != nil) != tc.wantErr || calls.Load() != tc.wantCalls {
				t.Fatalf("err %v after %d calls; want error %v after %d", err, calls.Load(), tc.wantErr, tc.wantCalls)
			}
			if !tc.wantErr && n != 1 {
				t.Fatalf("upserted %d", n)
			}
		})
	}
}

func TestWaitingAsToldDoesNotUseUpRetries(t *testing.T) {
	var calls atomic.Int32
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 4 { // an ingestion backlog, four answers long
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"accepted":1}`))
	}, WithRetries(1))
	c.maxBackoff = time.Millisecond
	n, err := c.PostEvents(context.Background(), []event.Event{{ID: "e1"}})
	if err != nil || n != 1 || calls.Load() != 5 {
		t.Fatalf("accepted %d, err %v after %d calls; want the batch accepted on the 5th", n, err, calls.Load())
	}
}

func TestCountsOfAnUnknownUserAreEmpty(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/known/profile") {
			w.Write([]byte(`{"user_id":"known","counts":{"play":2,"impression":5}}`))
			return
		}
		w.WriteHeader(http.StatusNotFound)
	})
	got, err := c.Counts(context.Background(), "nobody")
	if err != nil || len(got) != 0 {
		t.Fatalf("unknown user: %v, %v", got, err)
	}
	got, err = c.Counts(context.Background(), "known")
	if err != nil || got["play"] != 2 || got["impression"] != 5 {
		t.Fatalf("known user: %v, %v", got, err)
	}
}

func TestPutUserSendsOnlyTheDeclaredAttributes(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || r.URL.Path != "/v1/users/u7" {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		if _, has := body["user_id"]; has || body["region"] != "jp" || body["age"] != float64(31) {
			t.Errorf("body %v", body)
		}
		w.WriteHeader(http.StatusNoContent)
	})
	if err := c.PutUser(context.Background(), catalog.User{ID: "u7", Age: 31, Region: "jp"}); err != nil {
		t.Fatal(err)
	}
}

func TestOversizedBatchesAreRefusedBeforeSending(t *testing.T) {
	c := newTestClient(t, func(w http.ResponseWriter, r *http.Request) { t.Error("request sent") })
	if _, err := c.PostEvents(context.Background(), make([]event.Event, MaxBatch+1)); err == nil {
		t.Fatal("1001 events accepted")
	}
	if _, err := New("127.0.0.1:8080", "t"); err == nil {
		t.Fatal("a URL without scheme accepted")
	}
}
