package wire_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"bankwire/proto/wire"
)

// bodyTypes lists every body type: the request and response types of
// every operation, Event, and every struct they hold, each once.
func bodyTypes() []reflect.Type {
	seen := map[reflect.Type]bool{}
	var out []reflect.Type
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == reflect.TypeOf(time.Time{}) || seen[t] {
			return
		}
		seen[t] = true
		out = append(out, t)
		for i := 0; i < t.NumField(); i++ {
			walk(t.Field(i).Type)
		}
	}
	for _, op := range wire.Ops() {
		req, resp, _ := wire.BodyTypes(op)
		walk(reflect.TypeOf(req))
		walk(reflect.TypeOf(resp))
	}
	walk(reflect.TypeOf(wire.Event{}))
	return out
}

// Every body type survives a round trip with every field set to a value of
// its own, so a forgotten field or two fields swapped show up, twice: with
// every bool true and every optional present, then false and absent; the bytes
// read back the same with a reflection reader that follows the spec's
// rules over the fields in declaration order (the order of PROTOCOL.md's
// table, which wiregen writes); and every prefix of the encoding, and the
// encoding plus one byte, are rejected.
func TestMessageTypesWireRoundTrip(t *testing.T) {
	for _, typ := range bodyTypes() {
		for _, flip := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/flip=%v", typ.Name(), flip), func(t *testing.T) { roundTrip(t, typ, flip) })
		}
	}
}

func roundTrip(t *testing.T, typ reflect.Type, flip bool) {
	in := reflect.New(typ)
	seq := 0
	fill(t, in.Elem(), 0, &seq, flip)
	b := in.Elem().Interface().(wire.Marshaler).MarshalWire(nil)
	out := reflect.New(typ)
	if err := wire.Unmarshal(b, out.Interface()); err != nil {
		t.Fatalf("decode of % x: %v", b, err)
	}
	if !reflect.DeepEqual(in.Interface(), out.Interface()) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", out.Elem(), in.Elem())
	}
	ref := reflect.New(typ)
	d := wire.NewDecoder(b)
	specRead(t, d, ref.Elem())
	if err := d.End(); err != nil || !reflect.DeepEqual(in.Interface(), ref.Interface()) {
		t.Fatalf("the codec does not write the fields in declaration order (%v):\n got %+v\nwant %+v", err, ref.Elem(), in.Elem())
	}
	for i := range b {
		if err := wire.Unmarshal(b[:i], reflect.New(typ).Interface()); err == nil {
			t.Fatalf("the first %d of %d bytes decoded", i, len(b))
		}
	}
	if err := wire.Unmarshal(append(b, 0), reflect.New(typ).Interface()); err == nil {
		t.Fatal("a trailing byte was accepted")
	}
}

// fill sets every field of v to a value no other field has; bools are
// !flip, and optional fields are present unless flip.
func fill(t testing.TB, v reflect.Value, depth int, seq *int, flip bool) {
	if depth > 5 {
		return
	}
	*seq++
	n := *seq
	if v.Type() == reflect.TypeOf(time.Time{}) {
		// Microseconds: the wire's precision.
		v.Set(reflect.ValueOf(time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC).Add(time.Duration(n) * (time.Hour + time.Microsecond))))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			if !f.IsExported() {
				t.Fatalf("%s.%s is unexported", v.Type().Name(), f.Name)
			}
			if !f.Anonymous && f.Tag.Get("json") == "" {
				t.Errorf("%s.%s has no json tag", v.Type().Name(), f.Name)
			}
			fill(t, v.Field(i), depth+1, seq, flip)
		}
	case reflect.String:
		v.SetString(fmt.Sprintf("%s-%d-é", v.Type().Name(), n))
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(n) * -1234567)
	case reflect.Bool:
		v.SetBool(!flip)
	case reflect.Pointer:
		if flip {
			return
		}
		p := reflect.New(v.Type().Elem())
		fill(t, p.Elem(), depth+1, seq, flip)
		v.Set(p)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := 0; i < 2; i++ {
			fill(t, s.Index(i), depth+1, seq, flip)
		}
		v.Set(s)
	default:
		t.Fatalf("fill: unhandled kind %s", v.Kind())
	}
}

// specRead reads v the way PROTOCOL.md §10 describes, by reflection over
// its fields in declaration order.
func specRead(t *testing.T, d *wire.Decoder, v reflect.Value) {
	if v.Type() == reflect.TypeOf(time.Time{}) {
		v.Set(reflect.ValueOf(d.Time()))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			specRead(t, d, v.Field(i))
		}
	case reflect.String:
		v.SetString(d.Text())
	case reflect.Int, reflect.Int64:
		v.SetInt(d.Int())
	case reflect.Bool:
		v.SetBool(d.Bool())
	case reflect.Pointer:
		if d.Bool() {
			p := reflect.New(v.Type().Elem())
			specRead(t, d, p.Elem())
			v.Set(p)
		}
	case reflect.Slice:
		n := d.Count()
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := 0; i < n; i++ {
			specRead(t, d, s.Index(i))
		}
		v.Set(s)
	default:
		t.Fatalf("specRead: unhandled kind %s", v.Kind())
	}
}

// The decoder's primitives on hostile input: every rejection, and that a
// rejected read leaves zero values and a sticky error.
func TestDecoderRejects(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		read func(d *wire.Decoder)
		want string
	}{
		{"empty int", nil, func(d *wire.Decoder) { d.Int() }, "truncated int"},
		{"cut varint", []byte{0x80}, func(d *wire.Decoder) { d.Int() }, "truncated int"},
		{"padded varint", []byte{0x81, 0x00}, func(d *wire.Decoder) { d.Int() }, "not in its shortest form"},
		{"varint past 64 bits", append(bytes.Repeat([]byte{0xff}, 9), 0x7f), func(d *wire.Decoder) { d.Int() }, "overflows 64 bits"},
		{"bool 2", []byte{2}, func(d *wire.Decoder) { d.Bool() }, "bool byte 2"},
		{"no bool", nil, func(d *wire.Decoder) { d.Bool() }, "missing bool"},
		{"string past the end", []byte{3, 'a', 'b'}, func(d *wire.Decoder) { d.Text() }, "string of 3 bytes, 2 left"},
		{"huge string", []byte{0xff, 0xff, 0xff, 0xff, 0x0f}, func(d *wire.Decoder) { d.Text() }, "string of 4294967295 bytes, 0 left"},
		{"not UTF-8", []byte{2, 0xc3, 0x28}, func(d *wire.Decoder) { d.Text() }, "not UTF-8"},
		{"count past the end", []byte{5, 1, 1}, func(d *wire.Decoder) { d.Count() }, "list of 5 elements, 2 bytes left"},
	}
	for _, c := range cases {
		d := wire.NewDecoder(c.in)
		c.read(d)
		err := d.End()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
			continue
		}
		if s := d.Text(); s != "" || d.Int() != 0 || d.Bool() || d.End() != err {
			t.Errorf("%s: reads after an error are not zero, or the error changed", c.name)
		}
	}
	// Invalid UTF-8 is replaced on the way out, so a sender cannot make a
	// body malformed with a stray byte in a string.
	if d := wire.NewDecoder(wire.AppendString(nil, "a\xffb")); d.Text() != "a\uFFFDb" || d.End() != nil {
		t.Error("invalid UTF-8 was not replaced by the encoder")
	}
	// The zero time survives (IsZero), and so do times before 1970.
	for _, tm := range []time.Time{{}, time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC)} {
		d := wire.NewDecoder(wire.AppendTime(nil, tm))
		if got := d.Time(); !got.Equal(tm) || got.IsZero() != tm.IsZero() || d.End() != nil {
			t.Errorf("time %v came back as %v (%v)", tm, got, d.End())
		}
	}
}

// A list count is checked against the bytes left; one that passes that
// check but lies ends the decode at the element that runs out of bytes,
// without keeping the elements decoded so far.
func TestListCountLies(t *testing.T) {
	b := wire.AppendCount(nil, 1000)
	b = append(b, make([]byte, 1000)...) // 1000 bytes: enough for the count check, not for 1000 accounts
	var out wire.AccountsResponse
	if err := wire.Unmarshal(b, &out); err == nil || out.Accounts != nil {
		t.Fatalf("decoded %d accounts, err %v", len(out.Accounts), err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	allocs := testing.AllocsPerRun(10, func() {
		var out wire.AccountsResponse
		_ = wire.Unmarshal(b, &out)
	})
	runtime.ReadMemStats(&after)
	// The 1000 bytes hold 200 empty accounts (5 one-byte fields each):
	// a few slice growths (64, 128, 256 accounts), not one allocation per
	// account, and not the 1000 accounts the count announced.
	if allocs > 50 {
		t.Fatalf("%v allocations for a lying count", allocs)
	}
	perRun := (after.TotalAlloc - before.TotalAlloc) / 11 // AllocsPerRun runs once more to warm up
	if size := uint64(reflect.TypeOf(wire.Account{}).Size()); perRun >= 1000*size {
		t.Fatalf("%d bytes per decode: as much as the 1000 accounts announced (%d bytes)", perRun, 1000*size)
	}
}

// PROTOCOL.md §9 names each operation's request and response types;
// BodyTypes (which bankwire-cli -trace decodes with) must agree, for every op.
// An operation that §9 says carries a session has a request type with
// SessionToken (it embeds SessionRequest), and only such an operation.
func TestOpBodyTypesMatchSpec(t *testing.T) {
	spec, err := os.ReadFile("../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| (\\d+) \\| `([\\w.]+)` \\| `(\\w+)` → `(\\w+)`[^|]*\\| ([^|]+) \\|")
	seen := 0
	for _, m := range row.FindAllStringSubmatch(string(spec), -1) {
		var n int
		fmt.Sscan(m[1], &n)
		op := wire.Op(n)
		req, resp, ok := wire.BodyTypes(op)
		if !ok || op.String() != m[2] {
			t.Errorf("§9 op %d %s: BodyTypes knows it %v, named %s", n, m[2], ok, op)
			continue
		}
		if got := reflect.TypeOf(req).Elem().Name() + " → " + reflect.TypeOf(resp).Elem().Name(); got != m[3]+" → "+m[4] {
			t.Errorf("op %s: BodyTypes says %s, §9 says %s → %s", op, got, m[3], m[4])
		}
		_, carries := req.(interface{ SessionToken() string })
		if wantSession := m[5] != "no"; carries != wantSession {
			t.Errorf("op %s: request type carries a session %v, §9 says %q", op, carries, m[5])
		}
		seen++
	}
	if seen != len(wire.Ops()) {
		t.Errorf("§9 lists %d operations, the package defines %d", seen, len(wire.Ops()))
	}
}

// Marshal and Unmarshal report a type without a wire encoding, and a
// MarshalWire that panics (a value-receiver method on a typed nil
// pointer), as errors.
func TestMarshalUnencodable(t *testing.T) {
	if _, err := wire.Marshal(nil, struct{ N int }{1}); !errors.Is(err, wire.ErrNoEncoding) {
		t.Errorf("Marshal(struct) = %v, want ErrNoEncoding", err)
	}
	if _, err := wire.Marshal(nil, (*wire.AccountResponse)(nil)); err == nil || errors.Is(err, wire.ErrNoEncoding) {
		t.Errorf("Marshal(typed nil) = %v, want the panic as an error", err)
	}
	if err := wire.Unmarshal(nil, wire.AccountResponse{}); !errors.Is(err, wire.ErrNoEncoding) {
		t.Errorf("Unmarshal into a value = %v, want ErrNoEncoding", err)
	}
	if b, err := wire.Marshal([]byte("x"), nil); err != nil || string(b) != "x" {
		t.Errorf("Marshal(nil) = %q, %v; want nothing appended", b, err)
	}
}
