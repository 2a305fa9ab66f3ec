package apptier

import "time"

// SetSessionCacheTTL changes how long a's session cache may serve an entry,
// so tests can tell the notification's effect from the TTL's.
func SetSessionCacheTTL(a *App, ttl time.Duration) {
	a.sessions.mu.Lock()
	defer a.sessions.mu.Unlock()
	a.sessions.ttl = ttl
}
