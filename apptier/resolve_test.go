package apptier_test

import (
	"testing"
	"time"

	"bankwire/apptier/apptiertest"
	"bankwire/proto/wire"
)

// TestTransferResolve: transfers.resolve over the protocol. A made transfer
// resolves as made (the same transfer); an unused key resolves as not made
// and is closed, so transfers.create with it is refused and moves nothing;
// only the caller's own accounts can be asked about.
func TestTransferResolve(t *testing.T) {
	clock := apptiertest.NewClock(time.Date(2025, 3, 10, 0, 30, 0, 0, time.UTC))
	b := newBank(t, apptiertest.WithClock(clock.Now))
	alice := b.signIn("alice", "alice-demo-pass")
	bob := b.signIn("bob", "bob-demo-pass")
	aChk, bChk := b.account(alice, "checking"), b.account(bob, "checking")
	create := func(key string) (wire.TransferResponse, error) {
		return call(b, wire.TransferCreate, wire.TransferRequest{SessionRequest: wire.SessionRequest{Session: alice},
			IdempotencyKey: key, From: aChk.Number, To: bChk.Number, Amount: "3.00"})
	}
	resolve := func(session, key, from string) (wire.TransferResolveResponse, error) {
		return call(b, wire.TransferResolve, wire.TransferResolveRequest{SessionRequest: wire.SessionRequest{Session: session},
			IdempotencyKey: key, From: from})
	}

	made, err := create("r-made")
	if err != nil {
		t.Fatal(err)
	}
	got, err := resolve(alice, "r-made", aChk.Number)
	if err != nil || !got.Made || got.Transfer.ID != made.Transfer.ID || got.Transfer.Amount != 300 {
		t.Fatalf("resolve a made transfer: %+v, %v", got, err)
	}

	for range 2 {
		got, err = resolve(alice, "r-lost", aChk.Number)
		if err != nil || got.Made || got.Transfer.ID != 0 {
			t.Fatalf("resolve an unused key: %+v, %v", got, err)
		}
	}
	_, err = create("r-lost")
	wantErr(t, err, wire.FailedPrecondition, "idempotency_key")
	if bal := b.account(alice, "checking").Balance; bal != aChk.Balance-300 {
		t.Fatalf("alice's balance %d, want %d", bal, aChk.Balance-300)
	}

	_, err = resolve(alice, "r-x", bChk.Number) // bob's account
	wantErr(t, err, wire.NotFound, "from")
	_, err = resolve(alice, "with space", aChk.Number)
	wantErr(t, err, wire.InvalidArgument, "idempotency_key")
	_, err = resolve("no-such-session", "r-made", aChk.Number)
	wantErr(t, err, wire.Unauthenticated, "")
	// Bob cannot learn about alice's key through his own account.
	got, err = resolve(bob, "r-made", bChk.Number)
	if err != nil || got.Made {
		t.Fatalf("bob resolving alice's key: %+v, %v", got, err)
	}
}
