package apptier_test

import (
	"context"
	"strings"
	"testing"

	"bankwire/apptier"
	"bankwire/proto/wire"
)

func newHasher(t *testing.T) *apptier.Hasher {
	t.Helper()
	h, err := apptier.NewHasher(apptier.DefaultArgon2, 0)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestPasswordHashVerify(t *testing.T) {
	h := newHasher(t)
	ctx := context.Background()
	phc, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(phc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("PHC string %q: want argon2id with m=19456,t=2,p=1", phc)
	}
	if ok, err := h.Verify(ctx, phc, "correct horse battery staple"); !ok || err != nil {
		t.Fatalf("Verify(right) = %v, %v", ok, err)
	}
	for _, wrong := range []string{"correct horse battery stapl", "correct horse battery staple ", "", "Correct horse battery staple"} {
		if ok, _ := h.Verify(ctx, phc, wrong); ok {
			t.Errorf("Verify(%q) succeeded", wrong)
		}
	}
	// No truncation: two long passwords that share a 72-byte prefix differ.
	long := strings.Repeat("a", 100)
	phc2, _ := h.Hash(ctx, long+"1")
	if ok, _ := h.Verify(ctx, phc2, long+"2"); ok {
		t.Error("long passwords are truncated")
	}
	// An unknown user (empty hash) never verifies but still costs a hash.
	before := h.Computations()
	if ok, err := h.Verify(ctx, "", "anything"); ok || err != nil {
		t.Fatalf("Verify(unknown) = %v, %v", ok, err)
	}
	if h.Computations() != before+1 {
		t.Fatal("an unknown user did not pay for a hash")
	}
}

func TestPasswordVerifyRejectsMalformedHashes(t *testing.T) {
	h := newHasher(t)
	for _, phc := range []string{"x", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=18$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=999999999,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=1$!!$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$"} {
		if ok, err := h.Verify(context.Background(), phc, "pw"); ok || err == nil {
			t.Errorf("Verify(%q) = %v, %v; want an error", phc, ok, err)
		}
	}
}

func TestPasswordPolicy(t *testing.T) {
	h := newHasher(t)
	good := []string{"eight ch", strings.Repeat("x", 64), strings.Repeat("é", 128), "no rules at all here", "ünïcödé pässwörd"}
	for _, pw := range good {
		if err := h.CheckPolicy(pw); err != nil {
			t.Errorf("CheckPolicy(%q) = %v", pw, err)
		}
	}
	bad := []string{"", "seven c", strings.Repeat("x", 129), "password", "PASSWORD1", "iloveyou", "12345678", "qwertyuiop", "with\x00nul", string([]byte{'a', 0xff, 'b', 'c', 'd', 'e', 'f', 'g', 'h'})}
	for _, pw := range bad {
		err := h.CheckPolicy(pw)
		if wire.ErrorCode(err) != wire.InvalidArgument {
			t.Errorf("CheckPolicy(%q) = %v, want INVALID_ARGUMENT", pw, err)
		}
	}
}
