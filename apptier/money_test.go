package apptier_test

import (
	"math"
	"testing"

	"bankwire/apptier"
	"bankwire/proto/wire"
	"bankwire/store"
)

func TestParseAmount(t *testing.T) {
	good := map[string]int64{
		"1": 100, "0.01": 1, "12.34": 1234, "12.3": 1230, " 7 ": 700, "+5": 500, ".5": 50,
		"1,250.50": 125050, "1,000,000": 100000000, "0012.00": 1200, "10000000000.00": 1000000000000,
	}
	for in, want := range good {
		got, err := apptier.ParseAmount(in)
		if err != nil || got != want {
			t.Errorf("ParseAmount(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := []string{"", "0", "0.00", "-1", "−1", "-0.01", "1.234", "1.", "abc", "1e5", "NaN", "Inf", "1..2", "1.2.3",
		"12,34", "1,2345", ",123", "１２", "1 000", "0x10", "10000000000.01", "100000000000.00", "9223372036854775807",
		"\x00", "1\x00", string([]byte{0xff, 0xfe}), "12.3a", "$12"}
	for _, in := range bad {
		got, err := apptier.ParseAmount(in)
		if err == nil {
			t.Errorf("ParseAmount(%q) = %d, want an error", in, got)
			continue
		}
		if c := wire.ErrorCode(err); c != wire.InvalidArgument {
			t.Errorf("ParseAmount(%q) code %v, want INVALID_ARGUMENT", in, c)
		}
		var pe *wire.Error
		if e, ok := err.(*wire.Error); ok {
			pe = e
		}
		if pe == nil || pe.Field != "amount" || pe.Message == "" {
			t.Errorf("ParseAmount(%q) error %v: want a message about field amount", in, err)
		}
	}
}

func TestParseAmountFormatRoundTrip(t *testing.T) {
	for _, minor := range []int64{1, 5, 10, 99, 100, 101, 123456789, 1000000000000} {
		s := apptier.FormatAmount(minor)
		back, err := apptier.ParseAmount(s)
		if err != nil || back != minor {
			t.Errorf("round trip %d -> %q -> %d, %v", minor, s, back, err)
		}
	}
	if got := apptier.FormatAmount(-5); got != "-0.05" {
		t.Errorf("FormatAmount(-5) = %q", got)
	}
	if got := apptier.FormatAmount(math.MinInt64); got != "-92233720368547758.08" {
		t.Errorf("FormatAmount(MinInt64) = %q", got)
	}
}

func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"12.34", "1,000.00", "-1", "0.001", "abc", "99999999999.99"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := apptier.ParseAmount(s)
		if err != nil {
			return
		}
		if v <= 0 || v > store.MaxAmount {
			t.Fatalf("ParseAmount(%q) = %d: out of range", s, v)
		}
		back, err := apptier.ParseAmount(apptier.FormatAmount(v))
		if err != nil || back != v {
			t.Fatalf("ParseAmount(%q) = %d does not round-trip: %d, %v", s, v, back, err)
		}
	})
}

// TestParseAmountRejectsLeadingZeroGroups: "0,500" is no way to write five
// hundred with thousands separators; it is most likely a decimal comma
// (half a unit), and reading it as 500.00 would move a thousand times the
// intended amount.
func TestParseAmountRejectsLeadingZeroGroups(t *testing.T) {
	for _, in := range []string{"0,500", "00,100", "0,000,001.00", "000,250"} {
		if got, err := apptier.ParseAmount(in); err == nil {
			t.Errorf("ParseAmount(%q) = %d, want an error", in, got)
		}
	}
	for in, want := range map[string]int64{"1,500": 150000, "10,000.00": 1000000, "100,000": 10000000} {
		if got, err := apptier.ParseAmount(in); err != nil || got != want {
			t.Errorf("ParseAmount(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}
