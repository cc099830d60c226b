package catalog

// Region masks let a search decide "may this video be shown in the query's
// region" with one AND on an array indexed by slot. Reading the Video
// instead costs a cache miss per candidate and a string comparison per
// listed region, which profiles put at ~5% of the server's CPU.
//
// The catalog interns every region name it indexes to a small id; a slot's
// mask has the bit of each region its video lists. There are more possible
// regions than bits, so ids past the exact bits share one overflow bit and
// a slot matched through it is confirmed against the video itself. Videos
// with no region list are allowed everywhere and carry every bit, among
// them regionGlobalBit, which no region-limited video has: that is how a
// query region the catalog never indexed still finds them, and only them.
const (
	regionExactBits   = 62
	regionOverflowBit = uint64(1) << regionExactBits
	regionGlobalBit   = uint64(1) << 63
	regionsEverywhere = ^uint64(0)
)

// regionIDs interns region names. It is written only under the catalog's
// write lock (indexing) and read under its read lock (searching).
type regionIDs map[string]int

// mask returns the bit mask for a video's region list, interning names it
// has not seen yet.
func (r regionIDs) mask(regions []string) uint64 {
	if len(regions) == 0 {
		return regionsEverywhere
	}
	var m uint64
	for _, name := range regions {
		id, ok := r[name]
		if !ok {
			id = len(r)
			r[name] = id
		}
		m |= regionBit(id)
	}
	return m
}

func regionBit(id int) uint64 {
	if id >= regionExactBits {
		return regionOverflowBit
	}
	return uint64(1) << id
}

// regionTest is a query region resolved against the interned ids.
type regionTest struct {
	bits uint64 // a slot can match only if its mask shares a bit with bits
	// confirm: bits is the shared overflow bit, so a region-limited slot
	// that has it may list another overflow region; ask the video.
	confirm bool
	region  string
}

// test resolves a query region: "" (unknown) allows everything, a name never
// indexed allows only videos allowed everywhere.
func (r regionIDs) test(region string) regionTest {
	if region == "" {
		return regionTest{bits: regionsEverywhere}
	}
	id, ok := r[region]
	if !ok {
		return regionTest{bits: regionGlobalBit}
	}
	bit := regionBit(id)
	return regionTest{bits: bit, confirm: bit == regionOverflowBit, region: region}
}

// allows reports whether the slot whose mask and video are given may be
// shown; the video is read only for overflow regions.
func (t *regionTest) allows(mask uint64, v *Video) bool {
	if mask&t.bits == 0 {
		return false
	}
	if t.confirm && mask&regionGlobalBit == 0 {
		return v.AllowedIn(t.region)
	}
	return true
}
