package wire

import jsonv2 "github.com/go-json-experiment/json"

// The handshake (HELLO, AUTH, READY) is JSON, unlike every later frame's
// body (wire.go): it is read once per connection, so speed does not matter
// there, and it is where a newer peer must be able to add keys that an
// older one ignores, which is how versions get negotiated at all.
//
// It is encoded with encoding/json and decoded with
// github.com/go-json-experiment/json, the implementation behind the
// standard library's encoding/json/v2 (still behind GOEXPERIMENT=jsonv2 in
// Go 1.26; when it graduates, only the import path changes). AUTH comes
// from a peer that has proven nothing yet, and v2 is the safer reader of
// hostile input: object names match exactly (v1 folds case, so "SECRET"
// would fill Secret; v2 skips it as an unknown name), a duplicate name is
// an error (v1 keeps the last one, so two parsers can disagree about one
// greeting), and invalid UTF-8 is an error (v1 replaces it silently).

var handshakeOpts = jsonv2.RejectUnknownMembers(false)

// UnmarshalHandshake decodes exactly one JSON value into v, ignoring
// unknown names (a name that differs from a field's only in case is one),
// and rejecting duplicate names, invalid UTF-8 and trailing data.
func UnmarshalHandshake(p []byte, v any) error { return jsonv2.Unmarshal(p, v, handshakeOpts) }
