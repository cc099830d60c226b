package profile_test

import (
	"context"
	"testing"
	"time"

	"reelfeed/profile"
	"reelfeed/profile/storetest"
)

func TestTmpComposition(t *testing.T) {
	s := profile.NewMemory(profile.DefaultConfig())
	w := storetest.NewWorkload(3, 5000)
	storetest.Load(context.Background(), s, w, 50, 500)
	var tags, cats, ups, pl, po, sh int
	for _, u := range w.Users() {
		p, _ := s.Get(context.Background(), u, time.Now().Add(-time.Hour))
		tags += len(p.LongTerm.Tags); cats += len(p.LongTerm.Categories); ups += len(p.LongTerm.Uploaders)
		pl += len(p.Played); po += len(p.Positive); sh += len(p.Shown)
	}
	n := len(w.Users())
	t.Logf("per user: tags %d cats %d uploaders %d played %d positive %d shown %d", tags/n, cats/n, ups/n, pl/n, po/n, sh/n)
}
