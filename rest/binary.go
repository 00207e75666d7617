package rest

import (
	"mime"
	"strings"
	"unicode/utf8"
)

// mediaMatcher holds a REST API's binaryMediaTypes.
type mediaMatcher struct {
	exact    map[string]bool
	prefixes []string // "image/" for image/*
	any      bool     // */*
}

func newMediaMatcher(types []string) *mediaMatcher {
	if len(types) == 0 {
		return nil
	}
	m := &mediaMatcher{exact: map[string]bool{}}
	for _, t := range types {
		t = strings.ToLower(strings.TrimSpace(t))
		switch {
		case t == "*/*":
			m.any = true
		case strings.HasSuffix(t, "/*"):
			m.prefixes = append(m.prefixes, strings.TrimSuffix(t, "*"))
		default:
			m.exact[t] = true
		}
	}
	return m
}

// match reports whether a Content-Type is one of the binary media types.
func (m *mediaMatcher) match(contentType string) bool {
	if m == nil {
		return false
	}
	if m.any {
		return true
	}
	mt := mediaType(contentType)
	if mt == "" {
		return false
	}
	if m.exact[mt] {
		return true
	}
	for _, p := range m.prefixes {
		if strings.HasPrefix(mt, p) {
			return true
		}
	}
	return false
}

// mediaType is a Content-Type's type/subtype, lower case, without
// parameters.
func mediaType(contentType string) string {
	if contentType == "" {
		return ""
	}
	if t, _, err := mime.ParseMediaType(contentType); err == nil {
		return t
	}
	t, _, _ := strings.Cut(contentType, ";")
	return strings.ToLower(strings.TrimSpace(t))
}

// textual reports content types HTTP APIs pass as text: text/*, JSON,
// XML and JavaScript (and none at all).
func textual(contentType string) bool {
	mt := mediaType(contentType)
	switch {
	case mt == "", strings.HasPrefix(mt, "text/"),
		strings.HasSuffix(mt, "/json"), strings.HasSuffix(mt, "+json"),
		strings.HasSuffix(mt, "/xml"), strings.HasSuffix(mt, "+xml"),
		mt == "application/javascript", mt == "application/ecmascript":
		return true
	}
	return false
}

// bodyField is the event's body and isBase64Encoded. REST APIs base64
// a body whose Content-Type is one of the API's binaryMediaTypes; HTTP
// APIs one whose Content-Type is not text. Either way a body that is
// not UTF-8, or is content-encoded, is base64: JSON could not carry it.
func (x *exchange) bodyField() (string, bool) {
	if len(x.body) == 0 {
		return "", false
	}
	ct := x.r.Header.Get("Content-Type")
	binary := !utf8.Valid(x.body) || x.r.Header.Get("Content-Encoding") != ""
	if x.h.api.Protocol == ProtocolREST {
		binary = binary || x.h.binary.match(ct)
	} else {
		binary = binary || !textual(ct)
	}
	if binary {
		return b64(x.body), true
	}
	return string(x.body), false
}
