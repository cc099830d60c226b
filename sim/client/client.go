// Package client talks to a reelfeed server over its public HTTP API (v1),
// the way an app backend does: bearer token, JSON bodies, the API's error
// shape. The simulator and the benchmarks use it; it knows nothing of the
// server's internals.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"reelfeed/catalog"
	"reelfeed/event"
)

// MaxBatch is the most items the API accepts in one POST.
const MaxBatch = 1000

// Client is safe for concurrent use.
type Client struct {
	base       *url.URL
	token      string
	hc         *http.Client
	retries    int
	maxBackoff time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient replaces the HTTP client (default: one with a connection
// pool sized for load tests against a single host).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithRetries sets how often a request is retried after 429, 502, 503, 504
// or a connection error, honouring Retry-After (default 0: measurements
// must see every failure). An answer with Retry-After on 429 or 503 (the
// server pacing its clients, e.g. an ingestion backlog) is waited out
// without using up an attempt, for as long as the context allows. Only use
// it where repeating is harmless: upserts, reads, and event batches (event
// ids make them idempotent).
func WithRetries(n int) Option { return func(c *Client) { c.retries = n } }

// New returns a client for the server at baseURL (e.g. http://127.0.0.1:8080)
// authenticating with token (role service or admin to act for any user).
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("client: server URL %q must look like http://host:port", baseURL)
	}
	c := &Client{base: u, token: token, maxBackoff: 5 * time.Second}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		// Load tests keep hundreds of requests in flight to one host; the
		// default of 2 idle connections would open a new connection for
		// almost every request and exhaust ephemeral ports.
		t.MaxIdleConns = 1024
		t.MaxIdleConnsPerHost = 1024
		c.hc = &http.Client{Transport: t}
	}
	return c, nil
}

// BaseURL is the server address the client talks to.
func (c *Client) BaseURL() string { return c.base.String() }

// Error is a non-2xx answer, decoded from the API's error shape when the
// body has it.
type Error struct {
	Method, Path string
	Status       int
	Code         string
	Message      string
	Fields       map[string]string
	RetryAfter   time.Duration
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d", e.Method, e.Path, e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if len(e.Fields) > 0 {
		keys := make([]string, 0, len(e.Fields))
		for k := range e.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+": "+e.Fields[k])
		}
		b.WriteString(" (" + strings.Join(parts, "; ") + ")")
	}
	return b.String()
}

// StatusOf returns the HTTP status of an *Error, 0 for other errors.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// FeedQuery asks for one page of a user's feed.
type FeedQuery struct {
	UserID string
	Count  int // 0: server default
	Region string
	Device string
}

// FeedItem is one served video.
type FeedItem struct {
	VideoID    string  `json:"video_id"`
	Branch     string  `json:"branch"`
	Score      float64 `json:"score"`
	PlayURL    string  `json:"play_url"`
	Category   string  `json:"category"`
	UploaderID string  `json:"uploader_id"`
}

// Feed is a feed response.
type Feed struct {
	RequestID string     `json:"request_id"`
	UserID    string     `json:"user_id"`
	Items     []FeedItem `json:"items"`
}

// Feed fetches a page of the user's feed (GET /v1/feed).
func (c *Client) Feed(ctx context.Context, q FeedQuery) (*Feed, error) {
	var f Feed
	if err := c.do(ctx, http.MethodGet, "/v1/feed", q.values(), nil, &f); err != nil {
		return nil, err
	}
	return &f, nil
}

// FeedLen asks for a feed like Feed but decodes only how many items it
// has: a load generator sharing a process (and cores) with the server it
// measures should spend as little as it can per request.
func (c *Client) FeedLen(ctx context.Context, q FeedQuery) (int, error) {
	var f struct {
		Items []struct{} `json:"items"`
	}
	if err := c.do(ctx, http.MethodGet, "/v1/feed", q.values(), nil, &f); err != nil {
		return 0, err
	}
	return len(f.Items), nil
}

func (q FeedQuery) values() url.Values {
	v := url.Values{"user_id": {q.UserID}}
	if q.Count > 0 {
		v.Set("count", strconv.Itoa(q.Count))
	}
	if q.Region != "" {
		v.Set("region", q.Region)
	}
	if q.Device != "" {
		v.Set("device", q.Device)
	}
	return v
}

// PostEvents reports up to MaxBatch events (POST /v1/events) and returns
// how many the server accepted.
func (c *Client) PostEvents(ctx context.Context, events []event.Event) (int, error) {
	if len(events) > MaxBatch {
		return 0, fmt.Errorf("client: %d events in one batch, the API takes at most %d", len(events), MaxBatch)
	}
	var out struct {
		Accepted int `json:"accepted"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/events", nil, struct {
		Events []event.Event `json:"events"`
	}{events}, &out)
	return out.Accepted, err
}

// UpsertVideos creates or replaces up to MaxBatch videos (POST /v1/videos).
func (c *Client) UpsertVideos(ctx context.Context, videos []catalog.Video) (int, error) {
	if len(videos) > MaxBatch {
		return 0, fmt.Errorf("client: %d videos in one batch, the API takes at most %d", len(videos), MaxBatch)
	}
	var out struct {
		Upserted int `json:"upserted"`
	}
	err := c.do(ctx, http.MethodPost, "/v1/videos", nil, struct {
		Videos []catalog.Video `json:"videos"`
	}{videos}, &out)
	return out.Upserted, err
}

// PutUser declares a user's attributes (PUT /v1/users/{id}).
func (c *Client) PutUser(ctx context.Context, u catalog.User) error {
	body := struct {
		Age      int      `json:"age,omitempty"`
		Gender   string   `json:"gender,omitempty"`
		Region   string   `json:"region,omitempty"`
		Device   string   `json:"device,omitempty"`
		Language string   `json:"language,omitempty"`
		Follows  []string `json:"follows,omitempty"`
	}{u.Age, u.Gender, u.Region, u.Device, u.Language, u.Follows}
	return c.do(ctx, http.MethodPut, "/v1/users/"+url.PathEscape(u.ID), nil, body, nil)
}

// VideoExists reports whether the catalog serves the video yet
// (GET /v1/videos/{id}: 200 or 404).
func (c *Client) VideoExists(ctx context.Context, id string) (bool, error) {
	err := c.do(ctx, http.MethodGet, "/v1/videos/"+url.PathEscape(id), nil, nil, nil)
	if StatusOf(err) == http.StatusNotFound {
		return false, nil
	}
	return err == nil, err
}

// Counts returns the events applied to the user's profile so far, by type
// name (GET /v1/users/{id}/profile); an unknown user has none.
func (c *Client) Counts(ctx context.Context, userID string) (map[string]int64, error) {
	var p struct {
		Counts map[string]int64 `json:"counts"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/users/"+url.PathEscape(userID)+"/profile", nil, nil, &p)
	if StatusOf(err) == http.StatusNotFound {
		return map[string]int64{}, nil
	}
	if err != nil {
		return nil, err
	}
	if p.Counts == nil {
		p.Counts = map[string]int64{}
	}
	return p.Counts, nil
}

// RunJob runs a background job now and returns when it is done
// (POST /v1/admin/jobs/{name}; needs an admin token).
func (c *Client) RunJob(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodPost, "/v1/admin/jobs/"+url.PathEscape(name), nil, nil, nil)
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("client: encode %s %s: %w", method, path, err)
		}
	}
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	for attempt := 0; ; {
		err := c.once(ctx, method, u.String(), path, body, out)
		wait, retry := c.shouldRetry(err, attempt)
		if !retry {
			return err
		}
		// A server pacing its clients (Retry-After on 429/503, e.g. an
		// ingestion backlog) is not failing: waiting as told does not use
		// up an attempt. ctx still bounds the whole call.
		if !pacedByServer(err) {
			attempt++
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

func pacedByServer(err error) bool {
	var apiErr *Error
	return errors.As(err, &apiErr) && apiErr.RetryAfter > 0 &&
		(apiErr.Status == http.StatusTooManyRequests || apiErr.Status == http.StatusServiceUnavailable)
}

func (c *Client) shouldRetry(err error, attempt int) (time.Duration, bool) {
	if err == nil || attempt >= c.retries || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return 0, false
	}
	backoff := min(50*time.Millisecond<<attempt, c.maxBackoff)
	var apiErr *Error
	if errors.As(err, &apiErr) {
		switch apiErr.Status {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			if apiErr.RetryAfter > 0 {
				return min(apiErr.RetryAfter, c.maxBackoff), true
			}
			return backoff, true
		}
		return 0, false
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return backoff, true
	}
	return 0, false
}

func (c *Client) once(ctx context.Context, method, target, path string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Read the whole body even when it is not needed, so the connection
	// goes back to the pool.
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading response: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return decodeError(method, path, resp, data)
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decoding response: %w", method, path, err)
	}
	return nil
}

func decodeError(method, path string, resp *http.Response, data []byte) error {
	e := &Error{Method: method, Path: path, Status: resp.StatusCode}
	var shape struct {
		Error struct {
			Code    string            `json:"code"`
			Message string            `json:"message"`
			Fields  map[string]string `json:"fields"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &shape) == nil && (shape.Error.Code != "" || shape.Error.Message != "") {
		e.Code, e.Message, e.Fields = shape.Error.Code, shape.Error.Message, shape.Error.Fields
	} else {
		e.Message = strings.TrimSpace(string(data[:min(len(data), 200)]))
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if s, err := strconv.Atoi(ra); err == nil {
			e.RetryAfter = time.Duration(s) * time.Second
		} else if t, err := http.ParseTime(ra); err == nil {
			e.RetryAfter = time.Until(t)
		}
	}
	return e
}
