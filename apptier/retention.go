package apptier

import (
	"context"
	"time"
)

// purgeLoop purges at once, then every PurgeInterval. Several app tiers may
// purge at the same time: deleting what another already deleted is no
// work.
func (a *App) purgeLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.PurgeInterval)
	defer t.Stop()
	for {
		a.purge(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// purge deletes sessions that expired SessionRetention ago and sign-in
// events older than AuditRetention: neither table grows without bound.
func (a *App) purge(ctx context.Context) {
	now := a.cfg.Now()
	sessions, err := a.st.PurgeSessions(ctx, now.Add(-a.cfg.SessionRetention))
	if err != nil && ctx.Err() == nil {
		a.log.WarnContext(ctx, "purge expired sessions", "err", err)
	}
	events, err := a.st.PurgeSignInEvents(ctx, now.Add(-a.cfg.AuditRetention))
	if err != nil && ctx.Err() == nil {
		a.log.WarnContext(ctx, "purge old sign-in events", "err", err)
	}
	if sessions > 0 || events > 0 {
		a.log.InfoContext(ctx, "purged old records", "sessions", sessions, "signin_events", events)
	}
}
