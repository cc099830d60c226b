package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"reelfeed/catalog"
	"reelfeed/event"
)

// EventLimits bound what a batch of events may contain.
type EventLimits struct {
	MaxBatch      int           // events per request
	MaxFutureSkew time.Duration // how far ts may be ahead of the server clock
	MaxPastAge    time.Duration // how far ts may be behind it
}

// wireEvent is an event as clients send it. Fields are raw so that one bad
// field is reported by name instead of failing the whole decode.
type wireEvent struct {
	EventID   json.RawMessage `json:"event_id"`
	UserID    json.RawMessage `json:"user_id"`
	VideoID   json.RawMessage `json:"video_id"`
	Type      json.RawMessage `json:"type"`
	WatchMs   json.RawMessage `json:"watch_ms"`
	TS        json.RawMessage `json:"ts"`
	RequestID json.RawMessage `json:"request_id"`
}

var knownEventFields = map[string]bool{
	"event_id": true, "user_id": true, "video_id": true, "type": true,
	"watch_ms": true, "ts": true, "request_id": true,
}

// DecodeEvents parses and validates a POST /v1/events body. It returns the
// events (ids assigned where missing, ts defaulted to now) or, when any
// event is invalid, field → problem for every problem found, keyed like
// "events[3].type"; in that case no event may be accepted.
func DecodeEvents(body []byte, now time.Time, lim EventLimits) ([]event.Event, map[string]string) {
	if evs, ok := decodeFast(body, now, lim); ok {
		return evs, nil
	}
	return decodeSlow(body, now, lim)
}

// typedEvent is the single-pass decoding of a well-formed event; pointers
// tell absent (or null) fields from empty ones.
type typedEvent struct {
	EventID   *string `json:"event_id"`
	UserID    *string `json:"user_id"`
	VideoID   *string `json:"video_id"`
	Type      *string `json:"type"`
	WatchMs   *int64  `json:"watch_ms"`
	TS        *string `json:"ts"`
	RequestID *string `json:"request_id"`
}

// decodeFast handles the common case, a valid batch, in one pass. Anything
// unusual (a type mismatch, an unknown field, an invalid value) makes it
// give up so decodeSlow can name every problem precisely.
func decodeFast(body []byte, now time.Time, lim EventLimits) ([]event.Event, bool) {
	var envelope struct {
		Events []typedEvent `json:"events"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&envelope); err != nil || dec.More() {
		return nil, false
	}
	if len(envelope.Events) == 0 || len(envelope.Events) > lim.MaxBatch {
		return nil, false
	}
	out := make([]event.Event, len(envelope.Events))
	for i, te := range envelope.Events {
		ev, ok := te.validate(now, lim)
		if !ok {
			return nil, false
		}
		out[i] = ev
	}
	return out, true
}

func (te *typedEvent) validate(now time.Time, lim EventLimits) (event.Event, bool) {
	str := func(p *string, required bool) (string, bool) {
		if p == nil || *p == "" {
			return "", !required
		}
		return *p, catalog.ValidID(*p)
	}
	var ev event.Event
	var ok [4]bool
	ev.ID, ok[0] = str(te.EventID, false)
	ev.UserID, ok[1] = str(te.UserID, true)
	ev.VideoID, ok[2] = str(te.VideoID, true)
	ev.RequestID, ok[3] = str(te.RequestID, false)
	if !ok[0] || !ok[1] || !ok[2] || !ok[3] || te.Type == nil {
		return ev, false
	}
	typ, known := event.ParseType(*te.Type)
	if !known {
		return ev, false
	}
	ev.Type = typ
	if te.WatchMs != nil {
		if *te.WatchMs < 0 || *te.WatchMs > 24*3600*1000 {
			return ev, false
		}
		ev.WatchMs = *te.WatchMs
	}
	ev.TS = now
	if te.TS != nil && *te.TS != "" {
		ts, err := time.Parse(time.RFC3339Nano, *te.TS)
		if err != nil || ts.After(now.Add(lim.MaxFutureSkew)) || (lim.MaxPastAge > 0 && ts.Before(now.Add(-lim.MaxPastAge))) {
			return ev, false
		}
		ev.TS = ts.UTC()
	}
	if ev.ID == "" {
		ev.ID = uuid.Must(uuid.NewV7()).String()
	}
	return ev, true
}

// decodeSlow decodes field by field so every problem is reported by name.
func decodeSlow(body []byte, now time.Time, lim EventLimits) ([]event.Event, map[string]string) {
	var envelope struct {
		Events []json.RawMessage `json:"events"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&envelope); err != nil {
		return nil, map[string]string{"body": describeJSONError(err)}
	}
	if dec.More() {
		return nil, map[string]string{"body": "unexpected data after the JSON object"}
	}
	switch {
	case envelope.Events == nil:
		return nil, map[string]string{"events": "required"}
	case len(envelope.Events) == 0:
		return nil, map[string]string{"events": "must contain at least one event"}
	case len(envelope.Events) > lim.MaxBatch:
		return nil, map[string]string{"events": fmt.Sprintf("at most %d events per batch, got %d", lim.MaxBatch, len(envelope.Events))}
	}
	bad := map[string]string{}
	out := make([]event.Event, 0, len(envelope.Events))
	for i, raw := range envelope.Events {
		ev, problems := decodeOne(raw, now, lim)
		for field, msg := range problems {
			bad[fmt.Sprintf("events[%d].%s", i, field)] = msg
		}
		if len(problems) == 0 {
			out = append(out, ev)
		}
	}
	if len(bad) > 0 {
		return nil, bad
	}
	return out, nil
}

func describeJSONError(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Sprintf("malformed JSON at byte %d: %v", e.Offset, e)
	case *json.UnmarshalTypeError:
		return fmt.Sprintf("field %q must be %s", e.Field, e.Type)
	}
	return err.Error()
}

func decodeOne(raw json.RawMessage, now time.Time, lim EventLimits) (event.Event, map[string]string) {
	bad := map[string]string{}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return event.Event{}, map[string]string{"": "must be a JSON object"}
	}
	for k := range fields {
		if !knownEventFields[k] {
			bad[k] = "unknown field"
		}
	}
	var w wireEvent
	_ = json.Unmarshal(raw, &w) // shape already checked; fields parsed one by one below

	var ev event.Event
	ev.ID = stringField(bad, "event_id", w.EventID, false)
	ev.UserID = stringField(bad, "user_id", w.UserID, true)
	ev.VideoID = stringField(bad, "video_id", w.VideoID, true)
	ev.RequestID = stringField(bad, "request_id", w.RequestID, false)
	if ev.ID == "" && bad["event_id"] == "" {
		ev.ID = uuid.Must(uuid.NewV7()).String()
	}

	switch t := stringField(bad, "type", w.Type, true); {
	case t == "":
	default:
		typ, ok := event.ParseType(t)
		if !ok {
			bad["type"] = fmt.Sprintf("unknown type %q (want one of impression, play, complete, like, comment, share, follow, skip, dislike)", t)
		}
		ev.Type = typ
	}

	if isSet(w.WatchMs) {
		n, err := strconv.ParseInt(string(w.WatchMs), 10, 64)
		switch {
		case err != nil:
			bad["watch_ms"] = "must be an integer number of milliseconds"
		case n < 0:
			bad["watch_ms"] = "must be >= 0"
		case n > 24*3600*1000:
			bad["watch_ms"] = "must be at most 24h"
		default:
			ev.WatchMs = n
		}
	}

	ev.TS = now
	if s := stringField(bad, "ts", w.TS, false); s != "" {
		ts, err := time.Parse(time.RFC3339Nano, s)
		switch {
		case err != nil:
			bad["ts"] = "must be an RFC 3339 timestamp, e.g. 2026-01-02T15:04:05Z"
		case ts.After(now.Add(lim.MaxFutureSkew)):
			bad["ts"] = fmt.Sprintf("is %s in the future (at most %s allowed)", ts.Sub(now).Round(time.Second), lim.MaxFutureSkew)
		case lim.MaxPastAge > 0 && ts.Before(now.Add(-lim.MaxPastAge)):
			bad["ts"] = fmt.Sprintf("is older than %s", lim.MaxPastAge)
		default:
			ev.TS = ts.UTC()
		}
	}
	return ev, bad
}

func isSet(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }

// stringField decodes a JSON string field and checks it is a usable id
// (ids appear in stream subjects and Redis keys).
func stringField(bad map[string]string, name string, raw json.RawMessage, required bool) string {
	if !isSet(raw) {
		if required {
			bad[name] = "required"
		}
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		bad[name] = "must be a string"
		return ""
	}
	if s == "" {
		if required {
			bad[name] = "required"
		}
		return ""
	}
	if name == "ts" {
		return s
	}
	if !catalog.ValidID(s) {
		bad[name] = fmt.Sprintf("must be 1..%d bytes without whitespace, '*' or '>'", catalog.MaxIDLen)
		return ""
	}
	return s
}
