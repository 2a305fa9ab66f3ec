package wire_test

import (
	"fmt"
	"testing"

	"bankwire/proto/wire"
)

// UnmarshalHandshake reads exactly one object, matches keys exactly (after
// unescaping), skips unknown keys whatever their value, and rejects a key
// given twice however it is spelled.
func TestUnmarshalHandshake(t *testing.T) {
	for in, want := range map[string]wire.Ready{
		` {"version":1,"conn_id":"c1"} ` + "\n":               {Version: 1, ConnID: "c1"},
		`{"conn_id":"c\u00e9","future":{"a":[1,{"b":null}]}}`: {ConnID: "cé"},
		`{"Conn_ID":"x","VERSION":1}`:                         {},
		`{"version":null,"conn_id":null}`:                     {},
		`{}`:                                                  {},
	} {
		var got wire.Ready
		if err := wire.UnmarshalHandshake([]byte(in), &got); err != nil || got != want {
			t.Errorf("%s: %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{
		``, `null`, `[]`, `"x"`, `{`, `{"version":1,}`, `{"version":1}x`, `{"version":1}{}`,
		`{"conn_id":"a","conn\u005fid":"b"}`, `{"x":1,"x":1}`, `{"version":"1"}`, `{"version":256}`,
		"{\"conn_id\":\"\xc3\"}", `{"future":[1,}`,
	} {
		var got wire.Ready
		if err := wire.UnmarshalHandshake([]byte(in), &got); err == nil {
			t.Errorf("%q accepted as %+v", in, got)
		}
	}
	keys := func(n int) []byte { // {"k0":0,"k1":0,…}
		b := []byte("{")
		for i := range n {
			if i > 0 {
				b = append(b, ',')
			}
			b = fmt.Appendf(b, `"k%d":0`, i)
		}
		return append(b, '}')
	}
	if err := wire.UnmarshalHandshake(keys(wire.MaxHandshakeKeys), &wire.Ready{}); err != nil {
		t.Errorf("%d keys: %v", wire.MaxHandshakeKeys, err)
	}
	if err := wire.UnmarshalHandshake(keys(wire.MaxHandshakeKeys+1), &wire.Ready{}); err == nil {
		t.Errorf("%d keys accepted", wire.MaxHandshakeKeys+1)
	}
	if err := wire.UnmarshalHandshake([]byte(`{}`), wire.Ready{}); err == nil {
		t.Error("a struct value accepted")
	}
}
