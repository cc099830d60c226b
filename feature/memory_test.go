package feature_test

import (
	"testing"

	"reelfeed/feature"
	"reelfeed/feature/storetest"
)

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) feature.Store { return feature.NewMemory(feature.DefaultConfig()) })
}

func BenchmarkMemoryApply(b *testing.B) {
	benchApply(b, feature.NewMemory(feature.DefaultConfig()))
}

func BenchmarkMemoryGet(b *testing.B) {
	s := feature.NewMemory(feature.DefaultConfig())
	preload(b, s, benchVideos, 10)
	benchGet(b, s, benchVideos)
}
