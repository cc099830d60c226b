//go:build unix

package recall

import "syscall"

// processCPUSeconds is the user+system CPU time this process used so far, as
// the OS counts it (so time spent waiting for a busy machine is excluded).
func processCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
