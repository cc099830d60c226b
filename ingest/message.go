package ingest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"reelfeed/event"
)

// Stream messages carrying behaviour events come in two shapes: one event
// object (the events stream, and impressions stored before pages were
// batched) or a JSON array of events (one served page of impressions).

// errNoEventID marks stream content without an event id: the stores could
// never dedupe it, so it is treated as corruption.
var errNoEventID = errors.New("event without event_id")

// appendMessageEvents appends the events one stream message carries to dst.
// On error dst is returned unchanged: a message is applied whole or not at
// all, never in part.
func appendMessageEvents(dst []event.Event, data []byte) ([]event.Event, error) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 {
		return dst, errors.New("empty message")
	}
	switch trimmed[0] {
	case '{':
		var ev event.Event
		if err := json.Unmarshal(data, &ev); err != nil {
			return dst, fmt.Errorf("decode event: %w", err)
		}
		if ev.ID == "" {
			return dst, errNoEventID
		}
		return append(dst, ev), nil
	case '[':
		page, ok := decodePageFast(nil, data)
		if !ok {
			page = nil
			if err := json.Unmarshal(data, &page); err != nil {
				return dst, fmt.Errorf("decode event array: %w", err)
			}
		}
		for i := range page {
			if page[i].ID == "" {
				return dst, fmt.Errorf("array element %d: %w", i, errNoEventID)
			}
		}
		return append(dst, page...), nil
	default:
		return dst, fmt.Errorf("message starts with %q, want an event object or an array of events", trimmed[0])
	}
}

// pageMessage is the impressions-stream message for one served page: all
// its impressions in one body, so the publisher, the server's dedupe
// window and the consumer pay their per-message costs once per page.
func pageMessage(subject string, page []event.Event) (*nats.Msg, error) {
	data := make([]byte, 0, 1024*len(page))
	data = append(data, '[')
	for i := range page {
		if i > 0 {
			data = append(data, ',')
		}
		var err error
		if data, err = page[i].AppendJSON(data); err != nil {
			return nil, fmt.Errorf("encode impressions page: %w", err)
		}
	}
	data = append(data, ']')
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, pageMsgID(page))
	return msg, nil
}

// pageMsgID names a page by its request and the exact impressions in it.
// A page published again is stored once. A client retrying a feed request
// with the same request id usually gets other videos (the shown filter):
// that page gets another id and is stored, as its impressions were when
// each had its own message; impressions repeated across the two pages are
// deduped by the stores, which remember applied event ids.
func pageMsgID(page []event.Event) string {
	h := sha256.New()
	var length [binary.MaxVarintLen64]byte
	for i := range page {
		// Length-prefixed, so no two id lists hash the same bytes.
		h.Write(binary.AppendUvarint(length[:0], uint64(len(page[i].ID))))
		h.Write([]byte(page[i].ID))
	}
	digest := hex.EncodeToString(h.Sum(nil)[:12])
	if len(page) == 0 || page[0].RequestID == "" {
		return "imp-" + digest
	}
	return "imp-" + page[0].RequestID + "-" + digest
}
