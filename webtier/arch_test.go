package webtier_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The web tier must not be able to reach the database: it may not import
// the store, the app tier or pgx, directly or through anything else. It
// holds no database credentials either, so a compromised web tier can only
// ask the app tier what any signed-in customer could ask. Test files are
// exempt; they start real tiers.
func TestWebTierImportsNeitherStoreNorPgx(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "bankwire/webtier/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list returned too little to judge: %q", deps)
	}
	forbidden := []string{"bankwire/store", "bankwire/apptier", "github.com/jackc/pgx"}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("the web tier depends on %s", d)
			}
		}
	}
	found := false
	for _, d := range deps {
		found = found || d == "bankwire/proto"
	}
	if !found {
		t.Error("bankwire/proto is not among the dependencies: is go list looking at the right packages?")
	}
}

// bankwire/proto/limits is shared by every tier, the store included, so it
// must stay a leaf: constants only, importing nothing at all. Otherwise it
// could become the path by which the web tier reaches what it must not.
func TestLimitsPackageIsALeaf(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "bankwire/proto/limits").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) != 1 || deps[0] != "bankwire/proto/limits" {
		t.Fatalf("bankwire/proto/limits depends on %q; it must import nothing", deps)
	}
}
