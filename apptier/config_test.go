package apptier_test

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"bankwire/apptier"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaultsEnvAndFlags(t *testing.T) {
	s, err := apptier.LoadConfig(nil, envMap(nil))
	if err != nil {
		t.Fatal(err)
	}
	d := apptier.DefaultSettings()
	if s.Addr != ":12121" || s.Addr != d.Addr || s.App.DailyLimit != d.App.DailyLimit || s.App.IdleTimeout != 15*time.Minute ||
		s.App.AuditRetention != d.App.AuditRetention || s.LogLevel != slog.LevelInfo || s.Secret != apptier.DevSecret {
		t.Fatalf("defaults: %+v", s)
	}

	s, err = apptier.LoadConfig([]string{"-purge-interval", "5m", "-daily-limit", "250.50", "-admin-addr="}, envMap(map[string]string{
		"APPTIER_SESSION_RETENTION": "2h",
		"APPTIER_PURGE_INTERVAL":    "10m",
		"APPTIER_AUDIT_RETENTION":   "720h",
		"APPTIER_SESSION_IDLE":      " 20m ",
		"APPTIER_LOCK_AFTER":        "7",
		"APPTIER_SIGNUP_IP_LIMIT":   "3",
		"APPTIER_LOG_LEVEL":         "debug",
		"DATABASE_URL":              "postgres://generic",
		"APPTIER_DATABASE_URL":      "postgres://specific",
		"APPTIER_DEMO_DATA":         "true",
		"APPTIER_DB_MAX_CONNS":      "12",
	}))
	if err != nil {
		t.Fatal(err)
	}
	a := s.App
	if a.SessionRetention != 2*time.Hour || a.PurgeInterval != 5*time.Minute || a.AuditRetention != 720*time.Hour ||
		a.IdleTimeout != 20*time.Minute || a.LockAfter != 7 || a.SignUpIPLimit != 3 || a.DailyLimit != 25050 ||
		!a.DemoData || s.LogLevel != slog.LevelDebug || s.DatabaseURL != "postgres://specific" || s.AdminAddr != "" || s.DBMaxConns != 12 {
		t.Fatalf("from env and flags: %+v", s)
	}
	if s, err := apptier.LoadConfig(nil, envMap(map[string]string{"APPTIER_ADMIN_ADDR": "off"})); err != nil || s.AdminAddr != "" {
		t.Fatalf("APPTIER_ADMIN_ADDR=off: %q, %v", s.AdminAddr, err)
	}
}

// TestLoadConfigBadSettings: every malformed or unusable value is
// reported, all at once, and none is replaced by its default.
func TestLoadConfigBadSettings(t *testing.T) {
	_, err := apptier.LoadConfig(nil, envMap(map[string]string{
		"APPTIER_SESSION_IDLE": "15",
		"APPTIER_LOCK_AFTER":   "three",
		"APPTIER_MIGRATE":      "yes please",
		"APPTIER_DAILY_LIMIT":  "12.345",
		"APPTIER_LOG_LEVEL":    "loud",
		"APPTIER_LOCK_FOR":     "15m",
	}))
	if err == nil {
		t.Fatal("malformed settings were accepted")
	}
	for _, want := range []string{`APPTIER_SESSION_IDLE="15": not a duration`, `APPTIER_LOCK_AFTER="three": not an integer`,
		`APPTIER_MIGRATE="yes please": not a boolean`, `APPTIER_DAILY_LIMIT="12.345": not an amount`,
		`APPTIER_LOG_LEVEL="loud": not a log level`, `APPTIER_LOCK_FOR="15m": no longer used`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}

	// Well-formed values that cannot work are refused too, all at once.
	_, err = apptier.LoadConfig([]string{"-max-conns", "0", "-secret=", "-db-max-conns", "-1"}, envMap(map[string]string{
		"APPTIER_SESSION_IDLE":    "-1m",
		"APPTIER_LOCK_AFTER":      "0",
		"APPTIER_AUDIT_RETENTION": "1m",
		"APPTIER_TLS_CERT":        "cert.pem",
	}))
	if err == nil {
		t.Fatal("unusable settings were accepted")
	}
	for _, want := range []string{"session idle timeout -1m0s: must be positive", "lock after 0", "audit retention 1m0s is shorter",
		"max conns 0", "TLS needs both", "APPTIER_SECRET must not be empty", "database pool size -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}

	for _, args := range [][]string{{"-purge-interval", "often"}, {"stray"}, {"-daily-limit", "lots"}} {
		if _, err := apptier.LoadConfig(args, envMap(nil)); err == nil {
			t.Errorf("arguments %q were accepted", args)
		}
	}
}
