package world

import "math/rand/v2"

// Stream labels keep the world's random streams apart. Callers outside this
// package derive their own streams with labels of 100 and above.
const (
	streamGenerate uint64 = iota + 1
	streamEvolve
	streamHistory
	streamResponse
)

// RNG returns a generator seeded from seed and a path of labels, so each
// independent part of a simulation (one user's history, one user's session in
// one round) draws from its own reproducible stream whatever order, or
// goroutine, it runs in.
func RNG(seed int64, path ...uint64) *rand.Rand {
	h := splitmix(uint64(seed))
	for _, p := range path {
		h = splitmix(h ^ splitmix(p))
	}
	return rand.New(rand.NewPCG(h, splitmix(h)))
}

// ResponseRNG is the stream a user's reactions in one round are drawn from.
// Every policy gets the same stream for the same (user, round), so a policy
// comparison differs only by what was served (common random numbers).
func ResponseRNG(seed int64, user, round int) *rand.Rand {
	return RNG(seed, streamResponse, uint64(user), uint64(round))
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	z := x
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
