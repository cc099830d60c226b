package recall

import (
	"math"
	"slices"
	"testing"
)

func TestPackedListRoundTripAndCorruption(t *testing.T) {
	list := []Scored{{ID: "a", Score: 1.5}, {ID: "ünïcode id", Score: -math.MaxFloat64}, {ID: "z", Score: 5e-324}}
	packed := encodeScored(list)
	got, err := decodeScored(string(packed))
	if err != nil || !slices.Equal(got, list) {
		t.Fatalf("round trip = %v, %v; want %v", got, err, list)
	}
	if got, err := decodeScored(string(encodeScored(nil))); err != nil || len(got) != 0 {
		t.Errorf("empty list round trip = %v, %v", got, err)
	}
	// Every truncation, a wrong version and trailing garbage must be
	// refused, never panic or invent entries.
	for i := range len(packed) {
		if _, err := decodeScored(string(packed[:i])); err == nil {
			t.Errorf("truncated to %d bytes: accepted", i)
		}
	}
	bad := map[string]string{
		"wrong version":    "\x02" + string(packed[1:]),
		"trailing garbage": string(packed) + "x",
		"huge count":       "\x01\xff\xff\xff\xff\x0f",
		"huge id length":   "\x01\x01\xff\xff\xff\xff\x0fabc",
		"unterminated len": "\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
	}
	for name, v := range bad {
		if _, err := decodeScored(v); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func BenchmarkDecodePackedList(b *testing.B) {
	list := make([]Scored, 500)
	for i := range list {
		list[i] = Scored{ID: "video-000000" + string(rune('a'+i%26)), Score: float64(500 - i)}
	}
	packed := string(encodeScored(list))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeScored(packed); err != nil {
			b.Fatal(err)
		}
	}
}
