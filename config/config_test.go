package config

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsNeedNothingExternal(t *testing.T) {
	cfg, err := Load(writeConfig(t, "{}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "127.0.0.1:8080" || cfg.DataDir != "./data" {
		t.Fatalf("defaults: addr %q data_dir %q", cfg.HTTP.Addr, cfg.DataDir)
	}
	if cfg.Redis.Addr != "" || cfg.NATS.URL != "" || len(cfg.Elasticsearch.URLs) != 0 {
		t.Fatal("defaults must be embedded: no redis, nats or elasticsearch")
	}
}

func TestEnvOverridesConfigFile(t *testing.T) {
	p := writeConfig(t, "http:\n  addr: 127.0.0.1:9000\nredis:\n  addr: 10.0.0.1:6379\nprofile:\n  weights:\n    like: 3\n")
	t.Setenv("REELFEED_HTTP_ADDR", "127.0.0.1:9100")
	t.Setenv("REELFEED_REDIS_ADDR", "")
	t.Setenv("REELFEED_DATA_DIR", "/tmp/rf-env")
	t.Setenv("REELFEED_ELASTICSEARCH_URLS", "http://es1:9200,http://es2:9200")
	t.Setenv("REELFEED_HTTP_REQUEST_TIMEOUT", "3s")
	t.Setenv("REELFEED_PROFILE_WEIGHTS_LIKE", "7")
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "127.0.0.1:9100" {
		t.Errorf("http.addr = %q, want the env value", cfg.HTTP.Addr)
	}
	if cfg.DataDir != "/tmp/rf-env" {
		t.Errorf("data_dir = %q, want the env value", cfg.DataDir)
	}
	if got := cfg.Elasticsearch.URLs; len(got) != 2 || got[1] != "http://es2:9200" {
		t.Errorf("elasticsearch.urls = %v", got)
	}
	if cfg.HTTP.RequestTimeout != 3*time.Second {
		t.Errorf("http.request_timeout = %s", cfg.HTTP.RequestTimeout)
	}
	if cfg.Profile.Weights["like"] != 7 {
		t.Errorf("profile.weights.like = %v, want 7 from env", cfg.Profile.Weights["like"])
	}
}

func TestInvalidValuesNameTheirKey(t *testing.T) {
	cases := []struct {
		name, yaml, env, envVal, wantKey string
	}{
		{"bad duration", "http:\n  request_timeout: soon\n", "", "", "request_timeout"},
		{"bad addr", "http:\n  addr: nowhere\n", "", "", "http.addr"},
		{"negative timeout", "http:\n  request_timeout: -1s\n", "", "", "http.request_timeout"},
		{"bad log format", "log:\n  format: xml\n", "", "", "log.format"},
		{"short secret", "auth:\n  secret: abc\n", "", "", "auth.secret"},
		{"unknown key", "htp:\n  addr: 1\n", "", "", "htp.addr"},
		{"batch too big", "ingest:\n  max_batch: 5000\n", "", "", "ingest.max_batch"},
		{"bad env int", "{}\n", "REELFEED_RATELIMIT_BURST", "many", "burst"},
		{"bad env rate", "{}\n", "REELFEED_RATELIMIT_PER_SECOND", "0", "ratelimit.per_second"},
		{"gc too eager", "runtime:\n  gc_percent: 5\n", "", "", "runtime.gc_percent"},
		{"negative memory limit", "{}\n", "REELFEED_RUNTIME_MEMORY_LIMIT_BYTES", "-1", "runtime.memory_limit_bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(tc.env, tc.envVal)
			}
			_, err := Load(writeConfig(t, tc.yaml))
			if err == nil {
				t.Fatal("invalid config accepted")
			}
			if !strings.Contains(err.Error(), tc.wantKey) {
				t.Fatalf("error %q does not name %q", err, tc.wantKey)
			}
		})
	}
}

func TestRepositoryConfigYAMLIsValidAndComplete(t *testing.T) {
	cfg, err := Load("../config.yaml")
	if err != nil {
		t.Fatalf("config.yaml: %v", err)
	}
	if cfg.HTTP.Addr == "" {
		t.Fatal("config.yaml lost http.addr")
	}
	// Every key of the Config struct is documented in config.yaml.
	raw, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	leaves, maps := map[string]bool{}, map[string]bool{}
	knownKeys("", typeOfConfig(), leaves, maps)
	for k := range leaves {
		last := k[strings.LastIndex(k, ".")+1:]
		if !strings.Contains(string(raw), last+":") {
			t.Errorf("config.yaml does not document %s", k)
		}
	}
}

// config.yaml documents the defaults: loading it must give exactly what
// loading nothing gives.
func TestRepositoryConfigYAMLEqualsDefaults(t *testing.T) {
	fromFile, err := Load("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fromNothing, err := Load(writeConfig(t, "{}\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, b := canonicalJSON(t, fromFile), canonicalJSON(t, fromNothing)
	if string(a) != string(b) {
		t.Fatalf("config.yaml differs from the built-in defaults:\nfile:     %s\ndefaults: %s", diffHint(string(a), string(b)), diffHint(string(b), string(a)))
	}
}

// canonicalJSON renders c with empty lists and maps dropped, so nil and
// empty (a YAML "[]") compare equal.
func canonicalJSON(t *testing.T, c *Config) string {
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	_ = json.Unmarshal(raw, &v)
	out, _ := json.Marshal(dropEmpty(v))
	return string(out)
}

func dropEmpty(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			e = dropEmpty(e)
			if e == nil {
				delete(x, k)
			} else {
				x[k] = e
			}
		}
		if len(x) == 0 {
			return nil
		}
	case []any:
		if len(x) == 0 {
			return nil
		}
		for i := range x {
			x[i] = dropEmpty(x[i])
		}
	}
	return v
}

func diffHint(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(0, i-120)
	hi := min(len(a), i+120)
	return a[lo:hi]
}
