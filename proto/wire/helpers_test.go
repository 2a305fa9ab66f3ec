package wire_test

import "bankwire/proto/wire"

// encode encodes a message body (nil: an empty body).
func encode(v wire.Marshaler) []byte {
	if v == nil {
		return nil
	}
	return v.MarshalWire(nil)
}
