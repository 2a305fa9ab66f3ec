package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Bodies of REQUEST, RESPONSE and EVENT frames are in the protocol's
// compact binary encoding (PROTOCOL.md §10, which also says why it is not
// JSON): a message is its fields in a fixed order with no names and no
// padding, each field in one of five forms:
//
//	int     zigzag varint (like protobuf's sint64): 1 byte for -64..63
//	bool    one byte, 0 or 1
//	string  uvarint byte length, then that many bytes of valid UTF-8
//	time    int of microseconds since 1970-01-01T00:00:00Z
//	list    uvarint element count, then the elements
//
// A nested message is its fields inline; an optional one is a bool and,
// if that is 1, the message. One value has one encoding, and the only
// hostile inputs are lengths and counts, which Decoder checks against the
// bytes left before it allocates anything. The message types' MarshalWire
// and UnmarshalWire are generated (messages_gen.go).

// Marshaler is a body the protocol can send.
type Marshaler interface {
	// MarshalWire appends the message's encoding to dst.
	MarshalWire(dst []byte) []byte
}

// Unmarshaler is a body the protocol can receive.
type Unmarshaler interface {
	// UnmarshalWire reads the message's fields from d. Errors stick to d.
	UnmarshalWire(d *Decoder)
}

// ErrNoEncoding is returned for a body type that has no wire encoding: a
// programming error in the caller, not bad input.
var ErrNoEncoding = errors.New("type has no wire encoding")

// Marshal appends the encoding of v, a Marshaler, to dst (nil encodes
// as nothing, like Empty). A MarshalWire that panics, as a value-receiver
// method called on a typed nil pointer does, is an error here rather than
// a crash: the server encodes while it holds the connection's write lock,
// outside the handler's recover.
func Marshal(dst []byte, v any) (out []byte, err error) {
	if v == nil {
		return dst, nil
	}
	m, ok := v.(Marshaler)
	if !ok {
		return dst, fmt.Errorf("%T: %w", v, ErrNoEncoding)
	}
	defer func() {
		if p := recover(); p != nil {
			out, err = dst, fmt.Errorf("%T: MarshalWire panicked: %v", v, p)
		}
	}()
	return m.MarshalWire(dst), nil
}

// Unmarshal decodes p into v, a Unmarshaler, which must use every byte
// of p. An error other than ErrNoEncoding means p is not a valid body.
func Unmarshal(p []byte, v any) error {
	u, ok := v.(Unmarshaler)
	if !ok {
		return fmt.Errorf("%T: %w", v, ErrNoEncoding)
	}
	// Pooled: a Decoder handed to an interface method escapes, and would
	// be an allocation per body.
	d := decoderPool.Get().(*Decoder)
	*d = Decoder{p: p}
	u.UnmarshalWire(d)
	err := d.End()
	*d = Decoder{}
	decoderPool.Put(d)
	return err
}

var decoderPool = sync.Pool{New: func() any { return new(Decoder) }}

// AppendInt appends v as a zigzag varint.
func AppendInt(dst []byte, v int64) []byte { return binary.AppendVarint(dst, v) }

// AppendBool appends v as one byte.
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// AppendString appends s as a uvarint length and its bytes. Invalid UTF-8
// is replaced by U+FFFD, as encoding/json does, since a receiver rejects a
// body holding it: a form field with stray bytes then fails that field's
// validation instead of making the whole request malformed.
func AppendString(dst []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// AppendTime appends t as microseconds since the Unix epoch. Finer
// precision is dropped (PostgreSQL keeps microseconds too); the zero
// time.Time round-trips to a time for which IsZero reports true.
func AppendTime(dst []byte, t time.Time) []byte { return AppendInt(dst, t.UnixMicro()) }

// AppendCount appends a list's element count.
func AppendCount(dst []byte, n int) []byte { return binary.AppendUvarint(dst, uint64(n)) }

// Decoder reads the fields of one body. The first error sticks: later
// reads return zero values, and End reports it. A Decoder never panics and
// never allocates for a length or count larger than the bytes left.
type Decoder struct {
	p   []byte
	off int
	err error
}

// NewDecoder returns a Decoder reading p.
func NewDecoder(p []byte) *Decoder { return &Decoder{p: p} }

// End returns the first error, or an error if bytes are left over: every
// body is exactly its fields.
func (d *Decoder) End() error {
	if d.err == nil && d.off != len(d.p) {
		d.fail("%d bytes after the last field", len(d.p)-d.off)
	}
	return d.err
}

func (d *Decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("at byte %d: "+format, append([]any{d.off}, args...)...)
	}
}

// Int reads a zigzag varint.
func (d *Decoder) Int() int64 {
	u := d.uvarint("int")
	return int64(u>>1) ^ -int64(u&1) // zigzag, as binary.Varint
}

// IntN reads an int that must fit a Go int.
func (d *Decoder) IntN() int {
	v := d.Int()
	if v < math.MinInt || v > math.MaxInt {
		d.fail("int out of range")
		return 0
	}
	return int(v)
}

// Bool reads one byte that must be 0 or 1.
func (d *Decoder) Bool() bool {
	switch {
	case d.err != nil:
	case d.off >= len(d.p):
		d.fail("missing bool")
	case d.p[d.off] > 1:
		d.fail("bool byte %d", d.p[d.off])
	default:
		d.off++
		return d.p[d.off-1] == 1
	}
	return false
}

// Text reads a string (named so as not to look like fmt.Stringer).
func (d *Decoder) Text() string {
	n := d.length("string length", "string of %d bytes, %d left")
	b := d.p[d.off : d.off+n]
	if !utf8.Valid(b) {
		d.fail("string is not UTF-8")
		return ""
	}
	d.off += n
	return string(b)
}

// Time reads microseconds since the Unix epoch, as a UTC time.
func (d *Decoder) Time() time.Time {
	v := d.Int()
	if d.err != nil {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// Count reads a list's element count.
func (d *Decoder) Count() int { return d.length("list count", "list of %d elements, %d bytes left") }

// length reads a string's length or a list's count, which may not exceed
// the bytes left: every element of every list in the protocol takes at
// least one byte, so a larger count is a lie, and believing it would let
// a 10-byte body make the reader allocate gigabytes.
func (d *Decoder) length(what, tooLong string) int {
	n := d.uvarint(what)
	if left := len(d.p) - d.off; n > uint64(left) {
		d.fail(tooLong, n, left)
		return 0
	}
	return int(n)
}

func (d *Decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.p[d.off:])
	switch {
	case n == 0:
		d.fail("truncated %s", what)
	case n < 0:
		d.fail("%s overflows 64 bits", what)
	case n > 1 && d.p[d.off+n-1] == 0:
		// One value, one encoding: a padded varint would let two bodies
		// that differ byte for byte say the same thing.
		d.fail("%s not in its shortest form", what)
	default:
		d.off += n
		return v
	}
	return 0
}

// decodeList reads a count and that many elements. The slice grows as
// elements arrive rather than being made at the announced count, so a
// count that lies costs memory in proportion to the elements actually
// there (a body of n bytes can become about 30n bytes of slices: a 7-byte
// Message is a 96-byte struct).
func decodeList[T any, PT interface {
	*T
	Unmarshaler
}](d *Decoder) []T {
	n := d.Count()
	list := make([]T, 0, min(n, 64))
	var zero T
	for range n {
		list = append(list, zero)
		PT(&list[len(list)-1]).UnmarshalWire(d) // in place: a local would escape through PT
		if d.err != nil {
			return nil
		}
	}
	return list
}
