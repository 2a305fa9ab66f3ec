package wire

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/go-json-experiment/json/jsontext"
)

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

// ParseHello decodes a HELLO payload and checks that it is usable.
func ParseHello(p []byte) (Hello, error) {
	var h Hello
	if err := UnmarshalHandshake(p, &h); err != nil {
		return Hello{}, &Error{Code: ProtocolError, Message: "undecodable HELLO"}
	}
	if h.MaxPayload <= 0 || h.MaxInFlight <= 0 {
		return Hello{}, &Error{Code: ProtocolError, Message: "HELLO without limits"}
	}
	if !slices.Contains(h.Versions, int(Version)) {
		return h, &Error{Code: UnsupportedVersion, Message: fmt.Sprintf("server speaks versions %v, client speaks %d", h.Versions, Version)}
	}
	return h, nil
}

// ParseAuth decodes an AUTH payload. Unknown fields are ignored so that a
// later version can add some.
//
// A version that is a JSON number but not one this package speaks (0, 2,
// 256, -1, 1.5) is an UNSUPPORTED_VERSION error, with the other fields
// decoded; a version that is not a number is a PROTOCOL_ERROR like any
// other undecodable AUTH.
func ParseAuth(p []byte) (Auth, error) {
	var w struct {
		Version jsontext.Value `json:"version"`
		Client  string         `json:"client"`
		Secret  string         `json:"secret"`
	}
	if err := UnmarshalHandshake(p, &w); err != nil {
		return Auth{}, &Error{Code: ProtocolError, Message: "undecodable AUTH"}
	}
	a := Auth{Client: w.Client, Secret: w.Secret}
	if len(w.Version) == 0 {
		return a, &Error{Code: UnsupportedVersion, Message: "AUTH names no version"}
	}
	if w.Version.Kind() != '0' {
		return Auth{}, &Error{Code: ProtocolError, Message: "undecodable AUTH"}
	}
	n, err := strconv.ParseInt(string(w.Version), 10, 64)
	if err != nil || n != int64(Version) {
		return a, &Error{Code: UnsupportedVersion, Message: fmt.Sprintf("version %s not supported; server speaks %d", w.Version, Version)}
	}
	a.Version = uint8(n)
	return a, nil
}
