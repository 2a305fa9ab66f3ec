package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The handshake (HELLO, AUTH, READY) is JSON, unlike every later body
// (wire.go): it is read once per connection, and it is where a newer peer
// adds keys that an older one ignores, which is how versions get
// negotiated at all. It is encoded with json.Marshal and decoded by
// UnmarshalHandshake, stricter than json.Unmarshal because AUTH comes from
// a peer that has proven nothing yet (§3).

// Hello is the JSON payload of the server's greeting, the first frame on
// every connection. Clients ignore fields they do not know.
type Hello struct {
	Versions           []int  `json:"versions"`             // protocol versions the server speaks
	Server             string `json:"server"`               // name/version, e.g. "bankwire-apptier/1.0"
	MaxPayload         int    `json:"max_payload"`          // largest payload either side may send, bytes
	MaxInFlight        int    `json:"max_in_flight"`        // requests per connection before RESOURCE_EXHAUSTED
	IdleTimeoutMs      int64  `json:"idle_timeout_ms"`      // the server closes a connection silent this long
	HandshakeTimeoutMs int64  `json:"handshake_timeout_ms"` // time allowed to send AUTH
}

// Auth is the JSON payload of the client's AUTH frame.
type Auth struct {
	Version uint8  `json:"version"` // chosen from Hello.Versions
	Client  string `json:"client"`  // name/version, e.g. "bankwire-webtier/1.0"
	Secret  string `json:"secret"`  // the shared secret (APPTIER_SECRET)
}

// Ready is the JSON payload of the server's READY frame: the handshake
// succeeded and requests may flow.
type Ready struct {
	Version uint8  `json:"version"`
	ConnID  string `json:"conn_id"` // the server's name for this connection in its logs
}

// ParseHello decodes a HELLO payload and checks that it is usable:
// "versions" includes 1, "max_payload" and "max_in_flight" are positive.
func ParseHello(p []byte) (Hello, error) {
	var h Hello
	if err := UnmarshalHandshake(p, &h); err != nil {
		return Hello{}, Errorf(ProtocolError, "undecodable HELLO")
	}
	if h.MaxPayload <= 0 || h.MaxInFlight <= 0 {
		return Hello{}, Errorf(ProtocolError, "HELLO without limits")
	}
	if !slices.Contains(h.Versions, int(Version)) {
		return h, Errorf(UnsupportedVersion, "server speaks versions %v, client speaks %d", h.Versions, Version)
	}
	return h, nil
}

// ParseAuth decodes an AUTH payload. A "version" that is a JSON number
// other than 1 written 1 (0, 2, 256, -1, 1.5, 1.0), or none, is
// UNSUPPORTED_VERSION, with the other fields decoded; anything else is
// PROTOCOL_ERROR like any undecodable AUTH. A missing "secret" is the
// empty string, compared with the server's like any other.
func ParseAuth(p []byte) (Auth, error) {
	var w struct {
		Version json.RawMessage `json:"version"`
		Client  string          `json:"client"`
		Secret  string          `json:"secret"`
	}
	if err := UnmarshalHandshake(p, &w); err != nil {
		return Auth{}, Errorf(ProtocolError, "undecodable AUTH")
	}
	a := Auth{Client: w.Client, Secret: w.Secret}
	if len(w.Version) == 0 {
		return a, Errorf(UnsupportedVersion, "AUTH names no version")
	}
	if c := w.Version[0]; c != '-' && (c < '0' || c > '9') {
		return Auth{}, Errorf(ProtocolError, "undecodable AUTH")
	}
	n, err := strconv.ParseInt(string(w.Version), 10, 64)
	if err != nil || n != int64(Version) {
		return a, Errorf(UnsupportedVersion, "version %s not supported; server speaks %d", w.Version, Version)
	}
	a.Version = uint8(n)
	return a, nil
}

// MaxHandshakeKeys bounds the names in a handshake object, known and
// unknown (§3): parsing each costs the server far more than its bytes.
const MaxHandshakeKeys = 64

// UnmarshalHandshake decodes p, exactly one JSON object, into v, a pointer
// to a struct such as Hello, Auth or Ready. A key fills the field whose
// json tag names it exactly; every other key (one that differs only in
// case included: json.Unmarshal would let "SECRET" fill Secret) is
// skipped, so that a later version can add some. A key that appears twice
// (json.Unmarshal keeps the last, so two parsers could disagree), bytes
// that are not UTF-8, and anything after the object are errors. Only the
// top-level keys are matched this way: a field's value is decoded by
// encoding/json.
func UnmarshalHandshake(p []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("handshake: %T is not a pointer to a struct", v)
	}
	if !utf8.Valid(p) {
		return errors.New("handshake: not UTF-8")
	}
	st := rv.Elem()
	fields := make(map[string]reflect.Value, st.NumField())
	for i := range st.NumField() {
		if name, _, _ := strings.Cut(st.Type().Field(i).Tag.Get("json"), ","); name != "" && name != "-" {
			fields[name] = st.Field(i)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(p))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return errors.New("handshake: not a JSON object")
	}
	seen := make(map[string]bool, len(fields))
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fmt.Errorf("handshake: %w", err)
		}
		key := t.(string) // inside an object, Token returns keys as strings
		if seen[key] {
			return fmt.Errorf("handshake: key %q twice", key)
		}
		if len(seen) == MaxHandshakeKeys {
			return fmt.Errorf("handshake: more than %d keys", MaxHandshakeKeys)
		}
		seen[key] = true
		var dst any = new(json.RawMessage) // an unknown key's value: checked, then dropped
		if f, ok := fields[key]; ok {
			dst = f.Addr().Interface()
		}
		if err := dec.Decode(dst); err != nil {
			return fmt.Errorf("handshake: key %q: %w", key, err)
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return fmt.Errorf("handshake: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("handshake: data after the object")
	}
	return nil
}
