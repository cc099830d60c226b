//go:build unix

package ingest

import "syscall"

// processCPU is the user+system CPU time this process used so far: on a
// shared machine it measures the publish and apply cost better than wall
// time, and it includes the embedded server's goroutines.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
