//go:build tools

package tools

import (
	_ "github.com/HdrHistogram/hdrhistogram-go"
	_ "github.com/alicebob/miniredis/v2"
	_ "github.com/go-chi/chi/v5"
	_ "github.com/go-redis/redis_rate/v10"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/google/uuid"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go"
	_ "github.com/nats-io/nats.go/jetstream"
	_ "github.com/olivere/elastic/v7"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/schollz/progressbar/v3"
	_ "github.com/spf13/cobra"
	_ "github.com/spf13/viper"
	_ "go.uber.org/zap"
	_ "golang.org/x/term"
	_ "golang.org/x/time/rate"
)
