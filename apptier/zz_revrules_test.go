package apptier_test

import (
	"testing"

	"bankwire/apptier"
)

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
