package recall_test

import (
	"testing"

	"reelfeed/catalog"
	"reelfeed/recall"
)

// Seen answers the same from the feed's key sets as from the profile's maps.
func TestRequestSeenByKeysMatchesTheProfile(t *testing.T) {
	p := brProfile("u")
	p.Played["played"] = brNow
	p.Shown["shown"] = brNow
	p.Positive["liked-only"] = brNow // positive without played is not "seen" for recall
	var played, shown catalog.IDSet
	for id := range p.Played {
		played.Add(catalog.IDKey(id))
	}
	for id := range p.Shown {
		shown.Add(catalog.IDKey(id))
	}
	byMaps := brRequest(p)
	byKeys := brRequest(p)
	byKeys.PlayedKeys, byKeys.ShownKeys = &played, &shown
	for _, tc := range []struct {
		id   string
		want bool
	}{{"played", true}, {"shown", true}, {"liked-only", false}, {"new", false}} {
		v := brVideo(tc.id, "c", "up", 0.5)
		for name, req := range map[string]*recall.Request{"maps": byMaps, "keys": byKeys} {
			if got := req.Seen(v); got != tc.want {
				t.Errorf("%s: Seen(%s) = %v, want %v", name, tc.id, got, tc.want)
			}
		}
	}
}
