package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The committed codec and §10 table are what the generator makes of the
// committed messages.go: a type changed without go generate fails here,
// not only in CI's "go generate leaves no diff" check.
func TestCommittedOutputIsFresh(t *testing.T) {
	dir := filepath.Join("..", "..", "wire")
	src, err := os.ReadFile(filepath.Join(dir, "messages.go"))
	if err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile(filepath.Join("..", "..", "PROTOCOL.md"))
	if err != nil {
		t.Fatal(err)
	}
	code, newSpec, err := Generate(src, spec)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile(filepath.Join(dir, "messages_gen.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(code, committed) {
		t.Error("messages_gen.go is out of date: run go generate ./proto/wire")
	}
	if !bytes.Equal(newSpec, spec) {
		t.Error("PROTOCOL.md §10's table is out of date: run go generate ./proto/wire")
	}
}

const specStub = "intro\n" + tableBegin + "\nold table\n" + tableEnd + "\nrest\n"

func TestTable(t *testing.T) {
	src := `package proto

import "time"

type Empty struct{}

type Ping struct{}

type Who struct {
	ID   int64  ` + "`json:\"id\"`" + ` // never 0
	Name string ` + "`json:\"name\"`" + `
}

type Req struct {
	Who
	At    time.Time ` + "`json:\"at\"`" + `
	Many  []Who     ` + "`json:\"many\"`" + ` // newest first
	Maybe *Who      ` + "`json:\"maybe,omitempty\"`" + `
	Ok    bool      ` + "`json:\"ok\"`" + `
	N     int       ` + "`json:\"n\"`" + `
}
`
	code, spec, err := Generate([]byte(src), []byte(specStub))
	if err != nil {
		t.Fatal(err)
	}
	want := tableBegin + "\n| type | fields, in wire order |\n| --- | --- |\n" +
		"| `Empty`, `Ping` | nothing (0 bytes) |\n" +
		"| `Who` | `id` int (never 0) · `name` string |\n" +
		"| `Req` | `id` int · `name` string · `at` time · `many` list of Who (newest first) · `maybe` optional Who · `ok` bool · `n` int |\n" +
		tableEnd
	if !strings.Contains(string(spec), want) || !strings.HasPrefix(string(spec), "intro\n") || !strings.HasSuffix(string(spec), "\nrest\n") {
		t.Errorf("spec:\n%s\nwant the table:\n%s", spec, want)
	}
	for _, line := range []string{
		"dst = r.Who.MarshalWire(dst)",
		"dst = AppendTime(dst, r.At)",
		"r.Many = decodeList[Who](d)",
		"r.Maybe = new(Who)",
		"dst = AppendInt(dst, int64(r.N))",
		"r.N = d.IntN()",
		"w.ID = d.Int()",
		"func (Ping) MarshalWire(dst []byte) []byte { return dst }",
	} {
		if !strings.Contains(string(code), line) {
			t.Errorf("generated code lacks %q:\n%s", line, code)
		}
	}
}

// A field whose Go type has no form in §10 stops the generator with the
// type and field named, instead of producing a codec the spec does not
// describe.
func TestRejects(t *testing.T) {
	for _, c := range []struct{ name, field, want string }{
		{"float", "F float64 `json:\"f\"`", "float64 has no wire form"},
		{"map", "M map[string]string `json:\"m\"`", "has no wire form"},
		{"list of strings", "L []string `json:\"l\"`", "has no wire form"},
		{"no tag", "S string", "no json tag"},
		{"unknown struct", "U Unknown `json:\"u\"`", "Unknown is not a struct type of messages.go"},
		{"two names", "A, B string `json:\"a\"`", "share a declaration"},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := "package proto\n\ntype X struct {\n\t" + c.field + "\n}\n"
			_, _, err := Generate([]byte(src), []byte(specStub))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want one containing %q", err, c.want)
			}
		})
	}
	if _, _, err := Generate([]byte("package proto\n\ntype X struct{}\n"), []byte("no markers")); err == nil {
		t.Error("a spec without markers was accepted")
	}
}
