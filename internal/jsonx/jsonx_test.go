package jsonx

import (
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"
)

// decoded appends s with AppendString and decodes the result with
// encoding/json: the two must agree on every string.
func decoded(t *testing.T, s string) string {
	t.Helper()
	b := AppendString(nil, s)
	var got string
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("AppendString(%q) = %s: not JSON: %v", s, b, err)
	}
	return got
}

func TestAppendStringRoundTrips(t *testing.T) {
	for _, s := range []string{"", "plain", `quo"te`, `back\slash`, "new\nline\ttab\rcr", "\x00\x1f",
		"ünïcödé ✓ 😀", "<script>&", "line\u2028sep\u2029"} {
		if got := decoded(t, s); got != s {
			t.Errorf("%q came back as %q", s, got)
		}
	}
	if got := decoded(t, "bad\xffutf8"); got != "bad\ufffdutf8" {
		t.Errorf("invalid UTF-8 must become U+FFFD like encoding/json, got %q", got)
	}
}

func TestAppendTimeMatchesEncodingJSON(t *testing.T) {
	ts := time.Date(2026, 11, 22, 5, 4, 3, 123456789, time.FixedZone("x", 3600))
	want, _ := json.Marshal(ts)
	if got := AppendTime(nil, ts); string(got) != string(want) {
		t.Fatalf("got %s, want %s", got, want)
	}
	var arr []string
	if err := json.Unmarshal(AppendStrings(nil, []string{"a", `b"`}), &arr); err != nil || len(arr) != 2 || arr[1] != `b"` {
		t.Fatalf("AppendStrings: %v %v", arr, err)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a", "\"\\\n", "\xff\xfe", "😀\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := decoded(t, s)
		if utf8.ValidString(s) && got != s {
			t.Fatalf("%q came back as %q", s, got)
		}
		if !utf8.ValidString(got) {
			t.Fatalf("decoded string is not valid UTF-8: %q", got)
		}
	})
}
