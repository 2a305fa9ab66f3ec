package store_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The store is the bottom tier: of bankwire's own packages it may use only
// the schema (bankwire/migrations) and the constants-only leaf of
// wire-visible limits (bankwire/proto/limits), never the protocol or the
// tiers above, so that the bank's data layer works, and is tested, without
// any of them. Test files are exempt.
func TestStoreImportsNoTierAbove(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "bankwire/store").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := map[string]bool{"bankwire/store": true, "bankwire/migrations": true, "bankwire/proto/limits": true}
	found := false
	for _, d := range strings.Fields(string(out)) {
		found = found || d == "bankwire/store"
		if (d == "bankwire" || strings.HasPrefix(d, "bankwire/")) && !allowed[d] {
			t.Errorf("the store depends on %s", d)
		}
	}
	if !found {
		t.Fatal("bankwire/store is not among its own dependencies: is go list looking at the right package?")
	}
}
