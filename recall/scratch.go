package recall

// Scratch lends the in-process branches of one request memory for their
// candidate lists, reused request after request: every branch's list must
// live until the feed has merged them all, so they are carved out of one
// growing buffer that is only handed back, whole, by Reset. Without it
// each branch allocates its lists anew on every request, and that garbage
// is what paces the collector under load.
//
// A Scratch serves one goroutine: set Request.Scratch only for branches
// run on the request's own goroutine (see InProcess). The zero value is
// ready to use.
type Scratch struct {
	cands []Candidate
	index map[uint64]int // interestRecall's dedupe, by catalog.IDKey
	keys  []interestKey  // the interests a branch retrieves on
}

// Reset hands back everything lent since the last Reset. Lists handed out
// before must no longer be used.
func (s *Scratch) Reset() {
	clear(s.cands) // drop the video pointers while pooled
	s.cands = s.cands[:0]
	clear(s.index)
	clear(s.keys[:cap(s.keys)])
}

// take lends an empty list with room for n candidates. Appending beyond n
// reallocates (like any full slice) instead of overwriting the next list.
func (s *Scratch) take(n int) []Candidate {
	if len(s.cands)+n > cap(s.cands) {
		// The lists lent so far keep the old buffer alive until Reset;
		// from then on one buffer this size serves the whole request.
		s.cands = make([]Candidate, 0, max(2*cap(s.cands), len(s.cands)+n, 256))
	}
	start := len(s.cands)
	s.cands = s.cands[:start+n]
	return s.cands[start : start : start+n]
}

// candidates returns an empty candidate list with room for n, from the
// request's Scratch when it has one.
func (r *Request) candidates(n int) []Candidate {
	if r.Scratch == nil {
		return make([]Candidate, 0, n)
	}
	return r.Scratch.take(n)
}

// interestKeys returns an empty interest list with room for n, from the
// request's Scratch when it has one: one list in use at a time per request.
func (r *Request) interestKeys(n int) []interestKey {
	if r.Scratch == nil {
		return make([]interestKey, 0, n)
	}
	if cap(r.Scratch.keys) < n {
		r.Scratch.keys = make([]interestKey, 0, n)
	}
	return r.Scratch.keys[:0]
}

// dedupeIndex returns an empty video-key index, from the request's Scratch
// when it has one: one index in use at a time per request.
func (r *Request) dedupeIndex(hint int) map[uint64]int {
	if r.Scratch == nil {
		return make(map[uint64]int, hint)
	}
	if r.Scratch.index == nil {
		r.Scratch.index = make(map[uint64]int, hint)
	}
	clear(r.Scratch.index)
	return r.Scratch.index
}
