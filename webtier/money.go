package webtier

import (
	"strings"
)

// currencyFormat says how a currency is written: its symbol and how many
// minor-unit digits it has (ISO 4217 exponent).
type currencyFormat struct {
	symbol   string
	exponent int
}

var currencies = map[string]currencyFormat{
	"USD": {"$", 2}, "EUR": {"€", 2}, "GBP": {"£", 2}, "CHF": {"CHF ", 2},
	"JPY": {"¥", 0}, "CAD": {"CA$", 2}, "AUD": {"A$", 2}, "SEK": {"SEK ", 2},
}

// FormatMoney writes an amount of minor units in the customer's terms:
// FormatMoney(123456, "USD") is "$1,234.56" and FormatMoney(-1200, "EUR") is
// "−€12.00" (with a real minus sign, U+2212). Integer arithmetic only: money
// is never a float. Unknown currencies are written with their code, with two
// decimals.
func FormatMoney(minor int64, currency string) string {
	f, ok := currencies[currency]
	if !ok {
		f = currencyFormat{symbol: currency + " ", exponent: 2}
		if currency == "" {
			f.symbol = ""
		}
	}
	neg := minor < 0
	// Work on uint64 so the most negative int64 has a magnitude too.
	mag := uint64(minor)
	if neg {
		mag = -mag
	}
	var scale uint64 = 1
	for range f.exponent {
		scale *= 10
	}
	whole, frac := mag/scale, mag%scale

	var b strings.Builder
	if neg {
		b.WriteString("−")
	}
	b.WriteString(f.symbol)
	b.WriteString(groupThousands(whole))
	if f.exponent > 0 {
		b.WriteByte('.')
		digits := uintDigits(frac)
		for i := len(digits); i < f.exponent; i++ {
			b.WriteByte('0')
		}
		b.WriteString(digits)
	}
	return b.String()
}

func uintDigits(n uint64) string {
	if n == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	for n > 0 {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
	}
	return string(buf[i:])
}

func groupThousands(n uint64) string {
	s := uintDigits(n)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	lead := len(s) % 3
	if lead > 0 {
		b.WriteString(s[:lead])
	}
	for i := lead; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// maxAmountDigits bounds the whole part of a typed amount, as the app tier
// does (99,999,999,999 major units).
const maxAmountDigits = 11

// maxAmountMinor is the largest single amount the bank moves (10 billion in
// major units). The web tier cannot import the store that defines it; the
// fuzz test against the app tier's parser keeps the two equal.
const maxAmountMinor = 1_000_000_000_000

// amountProblem pre-checks an amount as typed in a form and returns its
// value in minor units (two decimals), or a user-facing message. It accepts
// exactly what the app tier accepts ("25", "25.5", "1,250.00") so the two
// never disagree; the app tier stays the authority and gets the string as
// typed.
func amountProblem(s string) (minor int64, problem string) {
	const example = "Enter an amount like 25 or 12.50."
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return 0, "Enter an amount."
	case len(s) > 32:
		return 0, "That amount is too large."
	case s[0] == '-' || strings.HasPrefix(s, "−"):
		return 0, "Enter an amount greater than zero."
	}
	s = strings.TrimPrefix(s, "+")
	whole, frac, hasDot := strings.Cut(s, ".")
	if hasDot && (frac == "" || strings.Contains(frac, ".")) {
		return 0, example
	}
	if strings.Contains(whole, ",") {
		groups := strings.Split(whole, ",")
		// A first group starting with 0 ("0,500") is no thousands grouping
		// but most likely a decimal comma: refused, as the app tier does.
		if len(groups[0]) == 0 || len(groups[0]) > 3 || groups[0][0] == '0' {
			return 0, "Enter an amount like 1,250.00 or 1250.00."
		}
		for _, g := range groups[1:] {
			if len(g) != 3 {
				return 0, "Enter an amount like 1,250.00 or 1250.00."
			}
		}
		whole = strings.Join(groups, "")
	}
	if !allDigits(whole) || !allDigits(frac) || whole == "" && frac == "" {
		return 0, example
	}
	if len(frac) > 2 {
		return 0, "Amounts can have at most 2 decimal places."
	}
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > maxAmountDigits {
		return 0, "That amount is too large."
	}
	for i := 0; i < len(whole); i++ {
		minor = minor*10 + int64(whole[i]-'0')
	}
	minor *= 100
	switch len(frac) {
	case 1:
		minor += int64(frac[0]-'0') * 10
	case 2:
		minor += int64(frac[0]-'0')*10 + int64(frac[1]-'0')
	}
	if minor == 0 {
		return 0, "Enter an amount greater than zero."
	}
	if minor > maxAmountMinor {
		return 0, "That amount is too large."
	}
	return minor, ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
