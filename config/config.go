// Package config loads reelfeed's configuration: built-in defaults, then
// config.yaml (or --config PATH), then environment variables
// REELFEED_<KEY> with dots as underscores. config.yaml at the repository
// root documents every key; Load rejects unknown keys and invalid values
// with a message naming the key.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"reelfeed/event"
)

// EnvPrefix prefixes every environment override.
const EnvPrefix = "REELFEED"

// Load reads the configuration. path may be empty: then ./config.yaml is
// used when it exists, else the built-in defaults.
func Load(path string) (*Config, error) {
	v := viper.New()
	def := Default()
	setDefaults(v, "", reflect.ValueOf(def))
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	v.SetConfigType("yaml")
	switch {
	case path != "":
		v.SetConfigFile(path)
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
	default:
		if _, err := os.Stat("config.yaml"); err == nil {
			v.SetConfigFile("config.yaml")
			if err := v.ReadInConfig(); err != nil {
				return nil, fmt.Errorf("config config.yaml: %w", err)
			}
		}
	}
	if err := checkUnknownKeys(v); err != nil {
		return nil, err
	}
	var cfg Config
	err := v.Unmarshal(&cfg, func(dc *mapstructure.DecoderConfig) {
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(),
			stringToSliceHook,
			weightsHook,
			eventTypeHook,
		)
		dc.WeaklyTypedInput = true
		dc.MatchName = func(mapKey, fieldName string) bool {
			return mapKey == snake(fieldName) || strings.EqualFold(mapKey, fieldName)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("config: %s", cleanDecodeError(err))
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// stringToSliceHook lets env vars set lists: "a,b,c".
func stringToSliceHook(from, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice {
		return data, nil
	}
	s := strings.TrimSpace(data.(string))
	if s == "" {
		return []string{}, nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts, nil
}

func cleanDecodeError(err error) string {
	msg := err.Error()
	msg = strings.ReplaceAll(msg, "decoding failed due to the following error(s):\n\n", "")
	return strings.TrimSpace(msg)
}

// keyOf is a field's config key: its mapstructure tag, else its name in
// snake_case (so package configs without tags still get readable keys).
func keyOf(f reflect.StructField) string {
	if tag := f.Tag.Get("mapstructure"); tag != "" {
		name, _, _ := strings.Cut(tag, ",")
		return name
	}
	if !f.IsExported() {
		return "-"
	}
	return snake(f.Name)
}

func snake(name string) string {
	var b strings.Builder
	runes := []rune(name)
	for i, r := range runes {
		upper := r >= 'A' && r <= 'Z'
		if upper && i > 0 {
			prevLower := runes[i-1] >= 'a' && runes[i-1] <= 'z' || runes[i-1] >= '0' && runes[i-1] <= '9'
			nextLower := i+1 < len(runes) && runes[i+1] >= 'a' && runes[i+1] <= 'z'
			if nextLower && i+2 == len(runes) && runes[i+1] == 's' {
				nextLower = false // a plural acronym: URLs -> urls
			}
			if prevLower || (nextLower && runes[i-1] >= 'A' && runes[i-1] <= 'Z') {
				b.WriteByte('_')
			}
		}
		if upper {
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func squashed(f reflect.StructField) bool {
	return f.Anonymous && f.Type.Kind() == reflect.Struct && strings.Contains(f.Tag.Get("mapstructure"), "squash")
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	timeType     = reflect.TypeOf(time.Time{})
	weightsType  = reflect.TypeOf([event.NumTypes]float64{})
)

// eventTypeHook decodes event types by name ("complete").
func eventTypeHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeOf(event.Type(0)) || from.Kind() != reflect.String {
		return data, nil
	}
	t, ok := event.ParseType(data.(string))
	if !ok {
		return nil, fmt.Errorf("unknown event type %q", data)
	}
	return t, nil
}

// weightsHook lets per-event-type arrays be written as maps by type name:
// weights: {complete: 4, like: 3}.
func weightsHook(from, to reflect.Type, data any) (any, error) {
	if to != weightsType {
		return data, nil
	}
	var out [event.NumTypes]float64
	switch m := data.(type) {
	case [event.NumTypes]float64:
		return m, nil
	case map[string]any:
		for k, v := range m {
			t, ok := event.ParseType(k)
			if !ok {
				return nil, fmt.Errorf("unknown event type %q", k)
			}
			f, err := toFloat(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[t] = f
		}
		return out, nil
	}
	return nil, fmt.Errorf("must be a map of event type to weight")
}

func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case string:
		return strconv.ParseFloat(x, 64)
	}
	return 0, fmt.Errorf("not a number: %v", v)
}

// setDefaults registers every field of the default config with viper, so
// AutomaticEnv can override keys that config.yaml does not mention.
func setDefaults(v *viper.Viper, prefix string, rv reflect.Value) {
	rt := rv.Type()
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		fv := rv.Field(i)
		if squashed(f) {
			setDefaults(v, prefix, fv)
			continue
		}
		key := keyOf(f)
		if key == "" || key == "-" {
			continue
		}
		if prefix != "" {
			key = prefix + "." + key
		}
		if f.Type == weightsType {
			for t := event.Type(0); t < event.NumTypes; t++ {
				v.SetDefault(key+"."+t.String(), fv.Index(int(t)).Interface())
			}
			continue
		}
		if fv.Kind() == reflect.Struct && f.Type != timeType {
			setDefaults(v, key, fv)
			continue
		}
		if fv.Kind() == reflect.Map && fv.Type().Key().Kind() == reflect.String && fv.Len() > 0 {
			// Per entry, so REELFEED_<MAP>_<ENTRY> can override one entry.
			iter := fv.MapRange()
			for iter.Next() {
				v.SetDefault(key+"."+iter.Key().String(), iter.Value().Interface())
			}
			continue
		}
		v.SetDefault(key, fv.Interface())
	}
}

// knownKeys lists every leaf key and every map-valued key of Config.
func knownKeys(prefix string, rt reflect.Type, leaves, maps map[string]bool) {
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		if squashed(f) {
			knownKeys(prefix, f.Type, leaves, maps)
			continue
		}
		key := keyOf(f)
		if key == "" || key == "-" {
			continue
		}
		if prefix != "" {
			key = prefix + "." + key
		}
		switch {
		case f.Type == weightsType:
			for t := event.Type(0); t < event.NumTypes; t++ {
				leaves[key+"."+t.String()] = true
			}
		case f.Type.Kind() == reflect.Struct && f.Type != timeType:
			knownKeys(key, f.Type, leaves, maps)
		case f.Type.Kind() == reflect.Map:
			maps[key] = true
		default:
			leaves[key] = true
		}
	}
}

func checkUnknownKeys(v *viper.Viper) error {
	leaves, maps := map[string]bool{}, map[string]bool{}
	knownKeys("", reflect.TypeOf(Config{}), leaves, maps)
	var unknown []string
	for _, k := range v.AllKeys() {
		if leaves[k] {
			continue
		}
		ok := false
		for m := range maps {
			if k == m || strings.HasPrefix(k, m+".") {
				ok = true
				break
			}
		}
		if !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("config: unknown key(s): %s (see config.yaml for every key)", strings.Join(unknown, ", "))
	}
	return nil
}

// Validate checks values that decode fine but make no sense; each error
// names its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, a...)))
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Addr); err != nil {
		bad("http.addr", "must be host:port, got %q", c.HTTP.Addr)
	}
	positive := map[string]time.Duration{
		"http.request_timeout": c.HTTP.RequestTimeout,
		"http.read_timeout":    c.HTTP.ReadTimeout,
		"http.shutdown_grace":  c.HTTP.ShutdownGrace,
	}
	for k, d := range positive {
		if d <= 0 {
			bad(k, "must be a positive duration, got %s", d)
		}
	}
	if c.HTTP.MaxBodyBytes < 1024 {
		bad("http.max_body_bytes", "must be at least 1024, got %d", c.HTTP.MaxBodyBytes)
	}
	if c.Runtime.GCPercent < 10 {
		bad("runtime.gc_percent", "must be at least 10, got %d", c.Runtime.GCPercent)
	}
	if c.Runtime.MemoryLimitBytes < 0 {
		bad("runtime.memory_limit_bytes", "must be 0 (none) or positive, got %d", c.Runtime.MemoryLimitBytes)
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	switch c.Log.Format {
	case "auto", "console", "json":
	default:
		bad("log.format", `must be "auto", "console" or "json", got %q`, c.Log.Format)
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", `must be debug, info, warn or error, got %q`, c.Log.Level)
	}
	if c.Auth.Secret != "" && len(c.Auth.Secret) < 16 {
		bad("auth.secret", "must be at least 16 bytes (or empty for a generated dev secret)")
	}
	if c.RateLimit.Enabled {
		if c.RateLimit.PerSecond <= 0 {
			bad("ratelimit.per_second", "must be > 0, got %v", c.RateLimit.PerSecond)
		}
		if c.RateLimit.Burst < 1 {
			bad("ratelimit.burst", "must be >= 1, got %d", c.RateLimit.Burst)
		}
	}
	if c.NATS.URL == "" && c.NATS.Embedded.Listen != "" {
		if _, _, err := net.SplitHostPort(c.NATS.Embedded.Listen); err != nil {
			bad("nats.embedded.listen", "must be host:port, got %q", c.NATS.Embedded.Listen)
		}
	}
	if c.NATS.DuplicateWindow < time.Second {
		bad("nats.duplicate_window", "must be at least 1s")
	}
	if c.Ingest.MaxBatch < 1 || c.Ingest.MaxBatch > 1000 {
		bad("ingest.max_batch", "must be between 1 and 1000, got %d", c.Ingest.MaxBatch)
	}
	if c.Ingest.ConsumerBatch < 1 {
		bad("ingest.consumer_batch", "must be >= 1")
	}
	if c.Ingest.MaxFutureSkew < 0 {
		bad("ingest.max_future_skew", "must be >= 0")
	}
	for name, w := range c.Profile.Weights {
		if w != w {
			bad("profile.weights."+name, "must be a number")
		}
	}
	for key, msg := range c.Feed.Validate() {
		bad("feed."+key, "%s", msg)
	}
	for name, check := range map[string]func() error{
		"recall.hot": c.Recall.Hot.Validate, "recall.spike": c.Recall.Spike.Validate,
		"recall.usercf": c.Recall.UserCF.Validate,
	} {
		if err := check(); err != nil {
			bad(name, "%v", err)
		}
	}
	switch c.Rank.Scorer {
	case "deepfm", "formula":
	default:
		bad("rank.scorer", `must be "deepfm" or "formula", got %q`, c.Rank.Scorer)
	}
	if err := c.Rank.Join.Validate(); err != nil {
		bad("rank.join", "%v", err)
	}
	if c.Rank.FlushInterval <= 0 || c.Rank.ReloadInterval <= 0 {
		bad("rank", "flush_interval and reload_interval must be positive")
	}
	if c.Recall.ListCacheTTL < 0 {
		bad("recall.list_cache_ttl", "must be >= 0")
	}
	return errors.Join(errs...)
}

func typeOfConfig() reflect.Type { return reflect.TypeOf(Config{}) }
