package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Channel is the PostgreSQL NOTIFY channel the schema's triggers announce
// committed ledger entries and chat messages on.
const Channel = "bankwire_events"

// Notification kinds.
const (
	// NotifyBalance: money moved in or out of Account, owned by CustomerID.
	NotifyBalance = "balance"
	// NotifyChat: message MessageID was posted in ConversationID, whose
	// members are CustomerIDs.
	NotifyChat = "chat"
	// NotifySession: sessions SessionIDs of CustomerID were revoked
	// (sign-out, sign-out everywhere). Sent by the store in the statement
	// that revokes them, so every replica learns of it at commit.
	NotifySession = "session"
	// NotifyReady is not from the database: Listen delivers it each time
	// LISTEN is in place, first and after every reconnection. Events that
	// happened while disconnected are lost, so on a ready that follows a
	// disconnection subscribers should refresh what they show.
	NotifyReady = "ready"
)

// Notification is one event from the channel. Which fields are set depends
// on Kind.
type Notification struct {
	Kind           string  `json:"kind"`
	CustomerID     int64   `json:"customer_id,omitempty"`
	Account        string  `json:"account,omitempty"`
	TransferID     int64   `json:"transfer_id,omitempty"`
	MessageID      int64   `json:"message_id,omitempty"`
	ConversationID int64   `json:"conversation_id,omitempty"`
	SenderID       int64   `json:"sender_id,omitempty"`
	CustomerIDs    []int64 `json:"customer_ids,omitempty"`
	SessionIDs     []int64 `json:"session_ids,omitempty"`
}

// payload is a notification as the schema's triggers send it. A balance
// notification lists every account a statement changed (Entries), one
// notification per transfer; Listen hands them to fn one account at a time.
type payload struct {
	Notification
	Entries []struct {
		CustomerID int64  `json:"customer_id"`
		Account    string `json:"account"`
		TransferID int64  `json:"transfer_id"`
	} `json:"entries"`
}

// How Listen watches its connection: a read that sees nothing for
// listenIdle is followed by a ping, so a silently dead connection (a
// restarted server behind a NAT, say) is noticed within about a minute
// rather than never.
const (
	listenIdle        = 30 * time.Second
	listenPingTimeout = 5 * time.Second
	listenMinBackoff  = 100 * time.Millisecond
	listenMaxBackoff  = 5 * time.Second
)

// Listen LISTENs on Channel and calls fn for every notification, in order
// (a balance notification once per account whose balance changed),
// from the calling goroutine, until ctx is done; it then returns ctx.Err().
// fn must not block for long: notifications queue behind it.
//
// It uses a dedicated connection, made with the pool's settings but outside
// the pool, because a LISTEN lives as long as its session and must not hold
// a pool slot or be handed to someone else. A lost connection is redialled
// with capped exponential backoff; see NotifyReady. Every app-tier replica
// runs its own Listen, and PostgreSQL fans each NOTIFY out to all of them.
func (s *Store) Listen(ctx context.Context, fn func(Notification)) error {
	backoff := listenMinBackoff
	for {
		listened, err := s.listenOnce(ctx, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if listened {
			backoff = listenMinBackoff
		}
		s.log.WarnContext(ctx, "store: listen connection lost, reconnecting", "err", err, "after", backoff)
		if err := sleep(ctx, backoff); err != nil {
			return err
		}
		backoff = min(2*backoff, listenMaxBackoff)
	}
}

// listenOnce runs one connection until it fails; listened reports whether
// LISTEN succeeded on it.
func (s *Store) listenOnce(ctx context.Context, fn func(Notification)) (listened bool, err error) {
	cfg := s.pool.Config().ConnConfig.Copy()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false, err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return false, err
	}
	fn(Notification{Kind: NotifyReady})
	for {
		waitCtx, cancel := context.WithTimeout(ctx, listenIdle)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return true, ctx.Err()
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				return true, err
			}
			pingCtx, cancel := context.WithTimeout(ctx, listenPingTimeout)
			err = conn.Ping(pingCtx)
			cancel()
			if err != nil {
				return true, err
			}
			continue
		}
		var p payload
		if err := json.Unmarshal([]byte(n.Payload), &p); err != nil || p.Kind == "" {
			s.log.WarnContext(ctx, "store: ignoring malformed notification", "channel", n.Channel)
			continue
		}
		if len(p.Entries) == 0 {
			fn(p.Notification)
			continue
		}
		for _, e := range p.Entries {
			fn(Notification{Kind: p.Kind, CustomerID: e.CustomerID, Account: e.Account, TransferID: e.TransferID})
		}
	}
}
