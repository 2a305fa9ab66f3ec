package apptier

import (
	"strings"

	"bankwire/proto/wire"
	"bankwire/store"
)

// maxAmount bounds any single amount: the store's limit (10 billion in major
// units), far above any real transfer and far below int64 overflow even
// after adding up a day's worth of transfers.
const maxAmount = store.MaxAmount

// ParseAmount turns the decimal string a customer typed ("12.34", "1,250.5",
// "7") into minor units of a two-decimal currency. It never goes through a
// float. Thousands separators are accepted only where they group by three
// after a first group that does not start with 0.
// Errors are INVALID_ARGUMENT about the field "amount" with a message fit to
// show next to the form field.
func ParseAmount(s string) (int64, error) {
	s = strings.TrimSpace(s)
	bad := func(msg string) (int64, error) {
		return 0, wire.FieldError(wire.InvalidArgument, "amount", msg)
	}
	if s == "" {
		return bad("Enter an amount.")
	}
	if len(s) > 32 {
		return bad("That amount is too large.")
	}
	if s[0] == '-' || strings.HasPrefix(s, "−") {
		return bad("The amount must be positive.")
	}
	if s[0] == '+' {
		s = s[1:]
	}
	whole, frac, hasPoint := strings.Cut(s, ".")
	if hasPoint && frac == "" {
		return bad("Enter digits after the decimal point, or none.")
	}
	if strings.Contains(frac, ".") {
		return bad("Enter a number such as 25 or 25.50.")
	}
	if whole == "" {
		whole = "0"
	}
	if strings.Contains(whole, ",") {
		groups := strings.Split(whole, ",")
		// A first group of "0" ("0,500") is no thousands grouping but most
		// likely a decimal comma.
		if len(groups[0]) == 0 || len(groups[0]) > 3 || groups[0][0] == '0' {
			return bad("Enter a number such as 1,250.00 or 1250.00.")
		}
		for _, g := range groups[1:] {
			if len(g) != 3 {
				return bad("Enter a number such as 1,250.00 or 1250.00.")
			}
		}
		whole = strings.Join(groups, "")
	}
	for _, part := range []string{whole, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return bad("Enter a number such as 25 or 25.50.")
			}
		}
	}
	if len(frac) > 2 {
		return bad("Use at most 2 decimal places.")
	}
	whole = strings.TrimLeft(whole, "0")
	if len(whole) > 11 { // > 99,999,999,999 major units
		return bad("That amount is too large.")
	}
	var minor int64
	for i := 0; i < len(whole); i++ {
		minor = minor*10 + int64(whole[i]-'0')
	}
	frac += strings.Repeat("0", 2-len(frac))
	minor = minor*100 + int64(frac[0]-'0')*10 + int64(frac[1]-'0')
	if minor == 0 {
		return bad("The amount must be greater than zero.")
	}
	if minor > maxAmount {
		return bad("That amount is too large.")
	}
	return minor, nil
}

// FormatAmount renders minor units as a plain decimal string ("1234.56",
// "-0.05"), the inverse of ParseAmount for non-negative values.
func FormatAmount(minor int64) string {
	sign := ""
	u := uint64(minor)
	if minor < 0 {
		sign = "-"
		u = uint64(-(minor + 1)) + 1
	}
	whole, cents := u/100, u%100
	digits := []byte{byte('0' + cents/10), byte('0' + cents%10)}
	return sign + uitoa(whole) + "." + string(digits)
}

func uitoa(u uint64) string {
	if u == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for u > 0 {
		i--
		b[i] = byte('0' + u%10)
		u /= 10
	}
	return string(b[i:])
}
