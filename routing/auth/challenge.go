package auth

import (
	"errors"
	"strings"
)

// tokenError marks a JWT authorizer's refusal of a token (401), so that
// an HTTP API can answer it with AWS's www-authenticate challenge.
type tokenError struct {
	err  error
	desc string
}

func (e *tokenError) Error() string { return e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// invalidToken marks err, which wraps ErrUnauthorized.
func invalidToken(err error) error {
	return &tokenError{err: err, desc: strings.TrimPrefix(err.Error(), ErrUnauthorized.Error()+": ")}
}

// BearerChallenge is the www-authenticate header AWS's HTTP APIs send
// with a JWT authorizer's 401:
//
//	Bearer scope="" error="invalid_token" error_description="the token has expired"
//
// and false for any other error.
func BearerChallenge(err error) (string, bool) {
	var te *tokenError
	if !errors.As(err, &te) || !errors.Is(err, ErrUnauthorized) {
		return "", false
	}
	return `Bearer scope="" error="invalid_token" error_description="` + quotable(te.desc) + `"`, true
}

// quotable keeps the characters RFC 6750 allows in error_description
// (printable ASCII but " and \).
func quotable(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' {
			b = append(b, c)
		}
	}
	return string(b)
}
