package config

import (
	"time"

	"reelfeed/catalog"
	"reelfeed/feed"
	"reelfeed/rank"
	"reelfeed/recall"
)

// Config is every knob of reelfeed. config.yaml documents each key; the
// mapstructure tag is the key.
type Config struct {
	HTTP          HTTP          `mapstructure:"http"`
	DataDir       string        `mapstructure:"data_dir"`
	Log           Log           `mapstructure:"log"`
	Auth          Auth          `mapstructure:"auth"`
	RateLimit     RateLimit     `mapstructure:"ratelimit"`
	Redis         Redis         `mapstructure:"redis"`
	NATS          NATS          `mapstructure:"nats"`
	Elasticsearch Elasticsearch `mapstructure:"elasticsearch"`
	Ingest        Ingest        `mapstructure:"ingest"`
	Profile       Profile       `mapstructure:"profile"`
	Feature       Feature       `mapstructure:"feature"`
	Feed          feed.Config   `mapstructure:"feed"`
	Recall        Recall        `mapstructure:"recall"`
	Rank          Rank          `mapstructure:"rank"`
	Runtime       Runtime       `mapstructure:"runtime"`
}

// Runtime tunes the Go runtime of the serving process. The environment's
// GOGC and GOMEMLIMIT, when set, win.
type Runtime struct {
	// GCPercent is the GC's heap growth target (GOGC). The feed allocates
	// short-lived candidate lists over a large, long-lived heap (profiles,
	// catalog, stream buffers); each collection marks all of it, so a
	// higher target means fewer collections and less CPU for more memory.
	GCPercent int `mapstructure:"gc_percent"`
	// MemoryLimitBytes is a soft heap limit (GOMEMLIMIT): near it the GC
	// collects more often instead of growing; 0: none.
	MemoryLimitBytes int64 `mapstructure:"memory_limit_bytes"`
}

// Recall configures the recall branches and the jobs some of them read.
type Recall struct {
	// ListCacheTTL: how long a replica serves a job's list (hot, i2i,
	// user-CF) from its in-process cache before reading Redis again.
	ListCacheTTL time.Duration         `mapstructure:"list_cache_ttl"`
	Hot          recall.HotConfig      `mapstructure:"hot"`
	Spike        recall.SpikeConfig    `mapstructure:"spike"`
	I2I          recall.I2IConfig      `mapstructure:"i2i"`
	UserCF       recall.UserCFConfig   `mapstructure:"usercf"`
	Tag          recall.TagConfig      `mapstructure:"tag"`
	Uploader     recall.UploaderConfig `mapstructure:"uploader"`
	Explore      recall.ExploreConfig  `mapstructure:"explore"`
	Start        recall.StartConfig    `mapstructure:"start"`
	Fresh        recall.FreshConfig    `mapstructure:"fresh"`
}

// Rank configures scoring, training samples, training and the live model.
type Rank struct {
	// Scorer is "deepfm" (the live model; the formula serves until a model
	// exists or when it is unusable) or "formula".
	Scorer string `mapstructure:"scorer"`
	// SamplesDir holds the labelled training samples ("": <data_dir>/samples).
	SamplesDir string `mapstructure:"samples_dir"`
	// CollectSamples joins impressions with later events into samples. In a
	// scale-out deployment enable it on one replica (every replica that
	// collects sees all live traffic).
	CollectSamples bool          `mapstructure:"collect_samples"`
	FlushInterval  time.Duration `mapstructure:"flush_interval"`
	// ReloadInterval: how often the live scorer checks the models dir for
	// a newer model (every replica sharing the dir hot-reloads).
	ReloadInterval time.Duration `mapstructure:"reload_interval"`
	// TrainInterval runs the train job on a timer (0: only on demand);
	// TrainWindow is how far back its samples go.
	TrainInterval time.Duration      `mapstructure:"train_interval"`
	TrainWindow   time.Duration      `mapstructure:"train_window"`
	Formula       rank.FormulaConfig `mapstructure:"formula"`
	Train         rank.TrainConfig   `mapstructure:"train"`
	Join          rank.JoinConfig    `mapstructure:"join"`
	Online        rank.OnlineConfig  `mapstructure:"online"`
}

type HTTP struct {
	Addr           string        `mapstructure:"addr"`
	ReadTimeout    time.Duration `mapstructure:"read_timeout"`
	WriteTimeout   time.Duration `mapstructure:"write_timeout"`
	RequestTimeout time.Duration `mapstructure:"request_timeout"`
	MaxBodyBytes   int64         `mapstructure:"max_body_bytes"`
	ShutdownGrace  time.Duration `mapstructure:"shutdown_grace"`
	Pprof          bool          `mapstructure:"pprof"`
}

type Log struct {
	Level     string `mapstructure:"level"`
	Format    string `mapstructure:"format"`
	AccessLog bool   `mapstructure:"access_log"`
}

type Auth struct {
	Secret      string        `mapstructure:"secret"`
	DevTokenTTL time.Duration `mapstructure:"dev_token_ttl"`
}

type RateLimit struct {
	Enabled          bool    `mapstructure:"enabled"`
	PerSecond        float64 `mapstructure:"per_second"`
	Burst            int     `mapstructure:"burst"`
	ServicePerSecond float64 `mapstructure:"service_per_second"`
	ServiceBurst     int     `mapstructure:"service_burst"`
}

type Redis struct {
	Addr     string   `mapstructure:"addr"`
	Addrs    []string `mapstructure:"addrs"` // cluster seeds; overrides addr
	Password string   `mapstructure:"password"`
	DB       int      `mapstructure:"db"`
	Prefix   string   `mapstructure:"prefix"`
}

type NATS struct {
	URL             string        `mapstructure:"url"`
	Embedded        NATSEmbedded  `mapstructure:"embedded"`
	StreamPrefix    string        `mapstructure:"stream_prefix"`
	Replicas        int           `mapstructure:"replicas"`
	DuplicateWindow time.Duration `mapstructure:"duplicate_window"`
	EventsMaxAge    time.Duration `mapstructure:"events_max_age"`
	EventsMaxBytes  int64         `mapstructure:"events_max_bytes"`
	PublishTimeout  time.Duration `mapstructure:"publish_timeout"`
}

type NATSEmbedded struct {
	Listen string `mapstructure:"listen"` // empty: in-process only, no TCP port
}

// Elasticsearch is the optional catalog retrieval backend.
type Elasticsearch struct {
	catalog.ElasticConfig `mapstructure:",squash"`
	// Search bounds how long a recall query waits for Elasticsearch before
	// the memory index answers.
	Search catalog.FallbackConfig `mapstructure:"search"`
}

type Ingest struct {
	MaxBatch         int           `mapstructure:"max_batch"`
	MaxFutureSkew    time.Duration `mapstructure:"max_future_skew"`
	MaxPastAge       time.Duration `mapstructure:"max_past_age"`
	ConsumerBatch    int           `mapstructure:"consumer_batch"`
	ConsumerWait     time.Duration `mapstructure:"consumer_wait"`
	AckWait          time.Duration `mapstructure:"ack_wait"`
	ImpressionBuffer int           `mapstructure:"impression_buffer"`
	MaxLag           int           `mapstructure:"max_lag"`
}

type Profile struct {
	Weights       map[string]float64 `mapstructure:"weights"`
	ShortHalfLife time.Duration      `mapstructure:"short_half_life"`
	ShortWindow   time.Duration      `mapstructure:"short_window"`
	LongHalfLife  time.Duration      `mapstructure:"long_half_life"`
	LongWindow    time.Duration      `mapstructure:"long_window"`
	MaxPlayed     int                `mapstructure:"max_played"`
	MaxShown      int                `mapstructure:"max_shown"`
	PlayedTTL     time.Duration      `mapstructure:"played_ttl"`
	ShownTTL      time.Duration      `mapstructure:"shown_ttl"`
	DedupeTTL     time.Duration      `mapstructure:"dedupe_ttl"`
	MaxInterests  int                `mapstructure:"max_interests"`
	PruneInterval time.Duration      `mapstructure:"prune_interval"`
	FallbackUsers int                `mapstructure:"fallback_users"`
}

type Feature struct {
	DedupeTTL time.Duration `mapstructure:"dedupe_ttl"`
	CacheTTL  time.Duration `mapstructure:"cache_ttl"`
	Smoothing Smoothing     `mapstructure:"smoothing"`
}

type Smoothing struct {
	PriorCTR         float64 `mapstructure:"prior_ctr"`
	PriorCompletion  float64 `mapstructure:"prior_completion"`
	PriorInteraction float64 `mapstructure:"prior_interaction"`
	Strength         float64 `mapstructure:"strength"`
}

// Default is the built-in configuration: everything embedded, nothing
// external needed.
func Default() Config {
	return Config{
		HTTP: HTTP{
			Addr:           "127.0.0.1:8080",
			ReadTimeout:    10 * time.Second,
			WriteTimeout:   10 * time.Minute,
			RequestTimeout: 10 * time.Second,
			MaxBodyBytes:   4 << 20,
			ShutdownGrace:  15 * time.Second,
		},
		DataDir: "./data",
		Log:     Log{Level: "info", Format: "auto", AccessLog: true},
		Auth:    Auth{DevTokenTTL: 24 * time.Hour},
		RateLimit: RateLimit{
			Enabled:          true,
			PerSecond:        20,
			Burst:            40,
			ServicePerSecond: 2000,
			ServiceBurst:     4000,
		},
		Redis: Redis{Prefix: "rf:"},
		NATS: NATS{
			StreamPrefix:    "REELFEED",
			Replicas:        1,
			DuplicateWindow: 2 * time.Minute,
			EventsMaxAge:    30 * 24 * time.Hour,
			EventsMaxBytes:  8 << 30,
			PublishTimeout:  5 * time.Second,
		},
		Elasticsearch: Elasticsearch{
			ElasticConfig: catalog.DefaultElasticConfig(),
			Search:        catalog.DefaultFallbackConfig(),
		},
		Feed: feed.DefaultConfig(),
		Recall: Recall{
			ListCacheTTL: time.Second,
			Hot:          recall.DefaultHotConfig(),
			Spike:        recall.DefaultSpikeConfig(),
			I2I:          recall.DefaultI2IConfig(),
			UserCF:       recall.DefaultUserCFConfig(),
			Tag:          recall.DefaultTagConfig(),
			Uploader:     recall.DefaultUploaderConfig(),
			Explore:      recall.DefaultExploreConfig(),
			Start:        recall.DefaultStartConfig(),
			Fresh:        recall.DefaultFreshConfig(),
		},
		Rank: Rank{
			Scorer:         "deepfm",
			CollectSamples: true,
			FlushInterval:  10 * time.Second,
			ReloadInterval: 30 * time.Second,
			TrainInterval:  24 * time.Hour,
			TrainWindow:    30 * 24 * time.Hour,
			Formula:        rank.DefaultFormulaConfig(),
			Train:          defaultTrain(),
			Join:           rank.DefaultJoinConfig(),
			Online:         rank.DefaultOnlineConfig(),
		},
		Runtime: Runtime{GCPercent: 400},
		Ingest: Ingest{
			MaxBatch:         1000,
			MaxFutureSkew:    5 * time.Minute,
			MaxPastAge:       365 * 24 * time.Hour,
			ConsumerBatch:    1000,
			ConsumerWait:     5 * time.Millisecond,
			AckWait:          30 * time.Second,
			ImpressionBuffer: 10000,
			MaxLag:           100000,
		},
		Profile: Profile{
			Weights: map[string]float64{
				"impression": 0.05, "play": 0.5, "share": 1.5, "comment": 2,
				"like": 3, "complete": 4, "follow": 2, "skip": -1, "dislike": -4,
			},
			ShortHalfLife: 20 * time.Minute,
			ShortWindow:   time.Hour,
			LongHalfLife:  7 * 24 * time.Hour,
			LongWindow:    30 * 24 * time.Hour,
			MaxPlayed:     5000,
			MaxShown:      2000,
			PlayedTTL:     30 * 24 * time.Hour,
			ShownTTL:      7 * 24 * time.Hour,
			DedupeTTL:     7 * 24 * time.Hour,
			MaxInterests:  200,
			PruneInterval: time.Hour,
			FallbackUsers: 100000,
		},
		Feature: Feature{
			DedupeTTL: 7 * 24 * time.Hour,
			CacheTTL:  time.Second,
			Smoothing: Smoothing{PriorCTR: 0.2, PriorCompletion: 0.1, PriorInteraction: 0.02, Strength: 20},
		},
	}
}

func defaultTrain() rank.TrainConfig {
	t := rank.DefaultTrainConfig()
	t.ModelsDir = "" // <data_dir>/models
	return t
}
