package wire_test

import (
	"os/exec"
	"strings"
	"testing"
)

// The wire package is the protocol's bytes and nothing else: it may not
// reach the network or any other bankwire package, so that it can be read,
// fuzzed and reused on its own (a peer in another program, a tool that
// decodes a capture).
func TestWireImportsNoNetwork(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "bankwire/proto/wire").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	found := false
	for _, d := range deps {
		found = found || d == "bankwire/proto/wire"
		if d == "net" || strings.HasPrefix(d, "net/") || (strings.HasPrefix(d, "bankwire/") && d != "bankwire/proto/wire") {
			t.Errorf("bankwire/proto/wire depends on %s", d)
		}
	}
	if !found {
		t.Fatalf("bankwire/proto/wire is not among its own dependencies: %q", deps)
	}
}
