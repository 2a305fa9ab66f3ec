package webtier_test

import (
	"math"
	"strings"
	"testing"

	"bankwire/apptier"
	"bankwire/webtier"
)

func TestFormatMoney(t *testing.T) {
	cases := []struct {
		minor    int64
		currency string
		want     string
	}{
		{0, "USD", "$0.00"},
		{5, "USD", "$0.05"},
		{123456, "USD", "$1,234.56"},
		{-1200, "USD", "−$12.00"},
		{100000000, "EUR", "€1,000,000.00"},
		{99, "GBP", "£0.99"},
		{1234, "JPY", "¥1,234"},
		{1234, "XYZ", "XYZ 12.34"},
		{-1, "EUR", "−€0.01"},
		{math.MaxInt64, "USD", "$92,233,720,368,547,758.07"},
		{math.MinInt64, "USD", "−$92,233,720,368,547,758.08"},
	}
	for _, c := range cases {
		if got := webtier.FormatMoney(c.minor, c.currency); got != c.want {
			t.Errorf("FormatMoney(%d, %q) = %q, want %q", c.minor, c.currency, got, c.want)
		}
	}
}

func TestAmountPrecheck(t *testing.T) {
	ok := map[string]int64{
		"25": 2500, "25.5": 2550, "12.34": 1234, "0.01": 1, ".5": 50, "+3": 300,
		" 7 ": 700, "1,250.00": 125000, "007.10": 710, "10000000000.00": 1_000_000_000_000,
	}
	for in, want := range ok {
		got, problem := webtier.AmountProblem(in)
		if problem != "" || got != want {
			t.Errorf("AmountProblem(%q) = %d, %q; want %d", in, got, problem, want)
		}
	}
	bad := map[string]string{
		"":                      "Enter an amount.",
		"0":                     "greater than zero",
		"0.00":                  "greater than zero",
		"-1":                    "greater than zero",
		"−1":                    "greater than zero",
		"1.234":                 "at most 2 decimal places",
		"abc":                   "Enter an amount like",
		"1e3":                   "Enter an amount like",
		"12.":                   "Enter an amount like",
		"1.2.3":                 "Enter an amount like",
		"1,00":                  "1,250.00",
		",100":                  "1,250.00",
		"0,500":                 "1,250.00",
		"00,100":                "1,250.00",
		"NaN":                   "Enter an amount like",
		"0x10":                  "Enter an amount like",
		"１２":                    "Enter an amount like",
		"100000000000":          "too large",
		strings.Repeat("9", 40): "too large",
	}
	for in, want := range bad {
		if _, problem := webtier.AmountProblem(in); !strings.Contains(problem, want) {
			t.Errorf("AmountProblem(%q) problem %q, want it to mention %q", in, problem, want)
		}
	}
}

// FuzzAmountPrecheck: the web tier's pre-check agrees with the app tier's
// parser on every input, so a customer never sees the web tier refuse an
// amount the bank would take, or the other way round.
func FuzzAmountPrecheck(f *testing.F) {
	for _, s := range []string{"25", "12.34", "-1", "1,250.00", "abc", "", "0.001", "99999999999.99", "12.", ".5", "+1", " 3 ", "1,2,3", "０", "0,500"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		minor, problem := webtier.AmountProblem(s)
		if problem == "" && minor <= 0 {
			t.Fatalf("AmountProblem(%q) accepted %d", s, minor)
		}
		if problem != "" && minor != 0 {
			t.Fatalf("AmountProblem(%q) rejected but returned %d", s, minor)
		}
		want, err := apptier.ParseAmount(s)
		switch {
		case err == nil && problem != "":
			t.Fatalf("%q: web tier says %q, app tier accepts %d", s, problem, want)
		case err != nil && problem == "":
			t.Fatalf("%q: web tier accepts %d, app tier says %v", s, minor, err)
		case err == nil && minor != want:
			t.Fatalf("%q: web tier reads %d, app tier %d", s, minor, want)
		}
	})
}
