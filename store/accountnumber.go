package store

import (
	"crypto/rand"
	"math/big"
	"strings"
)

// AccountNumberLen is the length of an account number: eleven random digits
// followed by a Luhn check digit.
const AccountNumberLen = 12

// ValidAccountNumber reports whether n is exactly twelve ASCII digits whose
// last digit is the Luhn check digit of the first eleven. It is a pure
// function so the web tier can reject typos before asking anyone.
func ValidAccountNumber(n string) bool {
	if len(n) != AccountNumberLen {
		return false
	}
	for i := 0; i < len(n); i++ {
		if n[i] < '0' || n[i] > '9' {
			return false
		}
	}
	return luhnSum(n)%10 == 0
}

// luhnSum is the Luhn sum of the ASCII digits in s, counting the rightmost
// digit as the check digit (not doubled).
func luhnSum(s string) int {
	sum := 0
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if (len(s)-1-i)%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum
}

// NormalizeAccountNumber removes the spaces and dashes people type or copy
// into account numbers ("1234 5678-9012"). It does not validate.
func NormalizeAccountNumber(s string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\t' || r == '\u00a0' {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
}

// FormatAccountNumber groups an account number for display: "1234 5678 9012".
func FormatAccountNumber(n string) string {
	if len(n) != AccountNumberLen {
		return n
	}
	return n[0:4] + " " + n[4:8] + " " + n[8:12]
}

// newAccountNumber returns a random, Luhn-valid account number whose first
// digit is not zero (so it never looks truncated). Randomness (rather than a
// sequence) keeps account numbers from revealing how many customers exist or
// being guessable from one's own.
func newAccountNumber() (string, error) {
	// 10^10 .. 10^11-1: eleven digits, the first non-zero.
	low := big.NewInt(10_000_000_000)
	n, err := rand.Int(rand.Reader, big.NewInt(90_000_000_000))
	if err != nil {
		return "", err
	}
	body := n.Add(n, low).String()
	check := (10 - luhnSum(body+"0")%10) % 10
	return body + string(rune('0'+check)), nil
}
