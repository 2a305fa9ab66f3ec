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
	srcs, err := readSources(dir)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile(filepath.Join("..", "..", "PROTOCOL.md"))
	if err != nil {
		t.Fatal(err)
	}
	code, newSpec, err := Generate(srcs[0], spec, srcs[1:]...)
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

// Every Method literal of messages.go, and nothing else, is an operation:
// its number becomes an Op constant and it joins Ops (in numeric order),
// Op.String and BodyTypes. One whose types are not message types of
// messages.go, whose number is not a literal, or which repeats another's
// number or name stops the generator.
func TestMethods(t *testing.T) {
	src := "package wire\n\ntype Ask struct{}\n\ntype Answer struct{}\n\n" +
		"var (\n\tHow = Method[Ask, Answer]{7, \"how\"}\n\tWhy = Method[Ask, Ask]{0x3, \"why\"}\n\tlimit = 3\n)\n\n" +
		"var Other = Other2[Ask, Answer]{}\n"
	code, _, err := Generate([]byte(src), []byte(specStub))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"OpHow Op = 7\n", "OpWhy Op = 3\n",
		"return []Op{\n\t\tOpWhy,\n\t\tOpHow,\n\t}",
		"case OpHow:\n\t\treturn \"how\"\n",
		"case OpWhy:\n\t\treturn new(Ask), new(Ask), true\n",
	} {
		if !strings.Contains(string(code), want) {
			t.Errorf("generated code lacks %q:\n%s", want, code)
		}
	}
	if strings.Contains(string(code), "Other") || strings.Contains(string(code), "limit") {
		t.Errorf("a variable that is not a Method became an operation:\n%s", code)
	}
	for bad, want := range map[string]string{
		"Method[Ask, Unknown]{1, \"m\"}":      "is not a struct type of messages.go",
		"Method[Ask, other.Answer]{1, \"m\"}": "is not a struct type of messages.go",
		"Method[[]Ask, Answer]{1, \"m\"}":     "is not a struct type of messages.go",
		"Method[Ask, Answer]{OpM, \"m\"}":     "OpM is not a literal INT",
		"Method[Ask, Answer]{1, name}":        "name is not a literal STRING",
		"Method[Ask, Answer]{70000, \"m\"}":   "out of range",
		"Method[Ask, Answer]{1, \"how\"}":     "used twice",
		"Method[Ask, Answer]{7, \"m\"}":       "used twice",
	} {
		src := "package wire\n\ntype Ask struct{}\n\ntype Answer struct{}\n\nvar How = Method[Ask, Answer]{7, \"how\"}\n\nvar M = " + bad + "\n"
		_, _, err := Generate([]byte(src), []byte(specStub))
		if err == nil || !strings.Contains(err.Error(), "operation M:") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want the operation named and %q", bad, err, want)
		}
	}
	if code, _, _ := Generate([]byte("package wire\n\ntype X struct{}\n"), []byte(specStub)); strings.Contains(string(code), "Ops()") || strings.Contains(string(code), "strconv") {
		t.Errorf("a table of operations without operations:\n%s", code)
	}
}

// The String methods of FrameType and Code name each constant of the
// other files the way PROTOCOL.md does, and ignore other constants.
func TestEnums(t *testing.T) {
	frame := "package wire\n\nconst Version uint8 = 1\n\nconst (\n\tFrameHello FrameType = 1 // greeting\n\tFramePong FrameType = 10\n)\n"
	errs := "package wire\n\nconst (\n\tOK Code = 0\n\tTooManyConnections Code = 104\n)\n"
	code, _, err := Generate([]byte("package wire\n\ntype X struct{}\n"), []byte(specStub), []byte(frame), []byte(errs))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"case FrameHello:\n\t\treturn \"HELLO\"\n", "case FramePong:\n\t\treturn \"PONG\"\n", "return \"FRAME_\" + strconv.Itoa(int(f))",
		"case OK:\n\t\treturn \"OK\"\n", "case TooManyConnections:\n\t\treturn \"TOO_MANY_CONNECTIONS\"\n", "return \"CODE_\" + strconv.Itoa(int(c))",
	} {
		if !strings.Contains(string(code), want) {
			t.Errorf("generated code lacks %q:\n%s", want, code)
		}
	}
	if strings.Contains(string(code), "Version") {
		t.Errorf("a constant of another type got a name:\n%s", code)
	}
}
