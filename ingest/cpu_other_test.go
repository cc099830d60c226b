//go:build !unix

package ingest

// processCPU is unavailable off unix; benchmarks then report 0.
func processCPU() float64 { return 0 }
