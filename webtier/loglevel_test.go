package webtier_test

import (
	"log/slog"
	"testing"

	"bankwire/webtier"
)

// TestLoadConfigLogLevel: info by default, WEBTIER_LOG_LEVEL or -log-level
// change it (the flag wins), and a level that does not exist is refused.
func TestLoadConfigLogLevel(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cfg, err := webtier.LoadConfig(nil, env(nil))
	if err != nil || cfg.LogLevel != slog.LevelInfo {
		t.Fatalf("default level = %v (%v), want info", cfg.LogLevel, err)
	}
	cfg, err = webtier.LoadConfig(nil, env(map[string]string{"WEBTIER_LOG_LEVEL": "warn"}))
	if err != nil || cfg.LogLevel != slog.LevelWarn {
		t.Fatalf("WEBTIER_LOG_LEVEL=warn gives %v (%v)", cfg.LogLevel, err)
	}
	cfg, err = webtier.LoadConfig([]string{"-log-level", "debug"}, env(map[string]string{"WEBTIER_LOG_LEVEL": "error"}))
	if err != nil || cfg.LogLevel != slog.LevelDebug {
		t.Fatalf("-log-level debug over WEBTIER_LOG_LEVEL=error gives %v (%v)", cfg.LogLevel, err)
	}
	if _, err := webtier.LoadConfig(nil, env(map[string]string{"WEBTIER_LOG_LEVEL": "loud"})); err == nil {
		t.Fatal("WEBTIER_LOG_LEVEL=loud accepted")
	}
	if _, err := webtier.LoadConfig([]string{"-log-level", "loud"}, env(nil)); err == nil {
		t.Fatal("-log-level loud accepted")
	}
}
