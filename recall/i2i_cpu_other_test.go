//go:build !unix

package recall

// processCPUSeconds is unavailable off unix; benchmarks then report 0.
func processCPUSeconds() float64 { return 0 }
