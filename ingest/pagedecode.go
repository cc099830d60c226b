package ingest

import (
	"encoding/json"

	"reelfeed/event"
)

// decodePageFast decodes an impressions page as the feed writes it (an
// array of event objects from event.AppendJSON) without reflection: every
// served item passes through here. It accepts only the plain shape that
// writer produces: known keys, strings without escapes, RFC 3339 times,
// integer watch_ms, string-array tags, and features as any valid JSON
// value. Anything else returns ok false and the caller decodes with
// encoding/json, which accepts every valid page; when ok is true the
// result equals encoding/json's (see FuzzDecodePageFast).
func decodePageFast(dst []event.Event, data []byte) (_ []event.Event, ok bool) {
	p := pageParser{b: data}
	start := len(dst)
	p.space()
	if !p.consume('[') {
		return dst[:start], false
	}
	p.space()
	if p.consume(']') {
		return dst, p.end()
	}
	for {
		var ev event.Event
		if !p.object(&ev) {
			return dst[:start], false
		}
		dst = append(dst, ev)
		p.space()
		if p.consume(']') {
			if !p.end() {
				return dst[:start], false
			}
			return dst, true
		}
		if !p.consume(',') {
			return dst[:start], false
		}
		p.space()
	}
}

type pageParser struct {
	b []byte
	i int
	// last holds the latest value of each string field: a page repeats its
	// user, request and variant on every item, and often its categories
	// and branches, so equal values share one string.
	last [len(pageFields)]string
}

func (p *pageParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *pageParser) consume(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// end reports whether only whitespace is left.
func (p *pageParser) end() bool {
	p.space()
	return p.i == len(p.b)
}

// plainString reads a string without escapes or control characters; the
// bytes alias the input.
func (p *pageParser) plainString() ([]byte, bool) {
	if !p.consume('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, true
		case c == '\\' || c < 0x20 || c >= 0x80:
			return nil, false // escapes and non-ASCII: leave them to encoding/json
		}
		p.i++
	}
	return nil, false
}

// object decodes one event object into ev.
func (p *pageParser) object(ev *event.Event) bool {
	if !p.consume('{') {
		return false
	}
	p.space()
	if p.consume('}') {
		return true
	}
	var seen uint32 // a repeated key: encoding/json's last-wins rules are not worth copying
	for {
		key, ok := p.plainString()
		if !ok {
			return false
		}
		bit := fieldBit(string(key))
		if bit == 0 || seen&bit != 0 {
			return false
		}
		seen |= bit
		p.space()
		if !p.consume(':') {
			return false
		}
		p.space()
		if !p.field(ev, string(key)) {
			return false
		}
		p.space()
		if p.consume('}') {
			return true
		}
		if !p.consume(',') {
			return false
		}
		p.space()
	}
}

var pageFields = [...]string{"event_id", "user_id", "video_id", "request_id", "category", "uploader_id",
	"branch", "variant", "type", "ts", "watch_ms", "tags", "features"}

// fieldBit is the key's bit among pageFields, 0 for any other key.
func fieldBit(key string) uint32 {
	for i, f := range pageFields {
		if f == key {
			return 1 << i
		}
	}
	return 0
}

func (p *pageParser) field(ev *event.Event, key string) bool {
	str := func(dst *string, field int) bool { // field: the key's index in pageFields
		s, ok := p.plainString()
		if string(s) != p.last[field] { // compared without a copy
			p.last[field] = string(s)
		}
		*dst = p.last[field]
		return ok
	}
	switch key {
	case "event_id":
		return str(&ev.ID, 0)
	case "user_id":
		return str(&ev.UserID, 1)
	case "video_id":
		return str(&ev.VideoID, 2)
	case "request_id":
		return str(&ev.RequestID, 3)
	case "category":
		return str(&ev.Category, 4)
	case "uploader_id":
		return str(&ev.UploaderID, 5)
	case "branch":
		return str(&ev.Branch, 6)
	case "variant":
		return str(&ev.Variant, 7)
	case "type":
		s, ok := p.plainString()
		if !ok {
			return false
		}
		t, ok := event.ParseType(string(s))
		ev.Type = t
		return ok
	case "ts":
		s, ok := p.plainString()
		if !ok {
			return false
		}
		return ev.TS.UnmarshalText(s) == nil // the strict RFC 3339 of time.Time.UnmarshalJSON
	case "watch_ms":
		return p.integer(&ev.WatchMs)
	case "tags":
		return p.strings(&ev.Tags)
	case "features":
		start := p.i
		if !p.skipValue() {
			return false
		}
		raw := p.b[start:p.i]
		if !json.Valid(raw) || string(raw) == "null" {
			return false
		}
		// Aliases the message, which is never reused (the client copies
		// each one): every item's features then share the page's memory.
		ev.Features = json.RawMessage(raw[:len(raw):len(raw)])
		return true
	}
	return false
}

// integer reads a plain decimal integer (no sign, fraction or exponent
// beyond what fits an int64 without overflow checks: at most 18 digits).
func (p *pageParser) integer(dst *int64) bool {
	neg := p.consume('-')
	start := p.i
	var n int64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' && p.i-start < 18 {
		n = n*10 + int64(p.b[p.i]-'0')
		p.i++
	}
	digits := p.i - start
	if digits == 0 || (digits > 1 && p.b[start] == '0') {
		return false
	}
	if p.i < len(p.b) {
		switch p.b[p.i] {
		case '.', 'e', 'E', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			return false
		}
	}
	if neg {
		n = -n
	}
	*dst = n
	return true
}

func (p *pageParser) strings(dst *[]string) bool {
	if !p.consume('[') {
		return false
	}
	p.space()
	if p.consume(']') {
		*dst = []string{}
		return true
	}
	var out []string
	for {
		s, ok := p.plainString()
		if !ok {
			return false
		}
		out = append(out, string(s))
		p.space()
		if p.consume(']') {
			*dst = out
			return true
		}
		if !p.consume(',') {
			return false
		}
		p.space()
	}
}

// skipValue moves past one JSON value; json.Valid checks it afterwards.
func (p *pageParser) skipValue() bool {
	depth := 0
	for p.i < len(p.b) {
		switch c := p.b[p.i]; c {
		case '"':
			p.i++
			for p.i < len(p.b) && p.b[p.i] != '"' {
				if p.b[p.i] == '\\' {
					p.i++
				}
				p.i++
			}
			if p.i >= len(p.b) {
				return false
			}
			p.i++
		case '{', '[':
			depth++
			p.i++
		case '}', ']':
			if depth == 0 {
				return true
			}
			depth--
			p.i++
		case ',':
			if depth == 0 {
				return true
			}
			p.i++
		default:
			p.i++
		}
		if depth == 0 && p.i < len(p.b) {
			if c := p.b[p.i]; c == ',' || c == '}' || c == ']' || c == ' ' || c == '\n' || c == '\t' || c == '\r' {
				return true
			}
		}
	}
	return depth == 0
}
