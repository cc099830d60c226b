package event

import (
	"errors"
	"fmt"

	"reelfeed/internal/jsonx"
)

// AppendJSON appends e as json.Marshal encodes it (same keys, same
// omissions), without reflection: the feed publishes an impression for
// every item it serves. Features is copied as it is and must hold valid
// JSON (the feed's feature logger writes it).
func (e *Event) AppendJSON(b []byte) ([]byte, error) {
	if !e.Type.Valid() {
		return b, fmt.Errorf("event: invalid type %d", uint8(e.Type))
	}
	str := func(b []byte, key, v string) []byte {
		return jsonx.AppendString(jsonx.AppendKey(b, key, false), v)
	}
	b = append(b, '{')
	b = jsonx.AppendString(jsonx.AppendKey(b, "event_id", true), e.ID)
	b = str(b, "user_id", e.UserID)
	b = str(b, "video_id", e.VideoID)
	b = str(b, "type", e.Type.String())
	if e.WatchMs != 0 {
		b = jsonx.AppendInt(jsonx.AppendKey(b, "watch_ms", false), e.WatchMs)
	}
	if e.TS.Year() < 0 || e.TS.Year() > 9999 {
		return b, errors.New("event: ts outside years 0-9999")
	}
	b = jsonx.AppendTime(jsonx.AppendKey(b, "ts", false), e.TS)
	for _, f := range [...]struct{ key, v string }{{"request_id", e.RequestID}, {"category", e.Category}} {
		if f.v != "" {
			b = str(b, f.key, f.v)
		}
	}
	if len(e.Tags) > 0 {
		b = jsonx.AppendStrings(jsonx.AppendKey(b, "tags", false), e.Tags)
	}
	for _, f := range [...]struct{ key, v string }{{"uploader_id", e.UploaderID}, {"branch", e.Branch}, {"variant", e.Variant}} {
		if f.v != "" {
			b = str(b, f.key, f.v)
		}
	}
	if len(e.Features) > 0 {
		b = append(jsonx.AppendKey(b, "features", false), e.Features...)
	}
	return append(b, '}'), nil
}
