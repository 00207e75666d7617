package sigv4

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portico-gateway/portico/routing/auth"
)

// The names SigV4 uses on the wire.
const (
	algorithm  = "AWS4-HMAC-SHA256"
	terminator = "aws4_request"
	// amzDateFormat is X-Amz-Date's form, e.g. 20240101T120000Z.
	amzDateFormat = "20060102T150405Z"
	// unsignedPayload is the payload hash a presigned URL may use.
	unsignedPayload = "UNSIGNED-PAYLOAD"

	queryAlgorithm     = "X-Amz-Algorithm"
	queryCredential    = "X-Amz-Credential"
	queryDate          = "X-Amz-Date"
	queryExpires       = "X-Amz-Expires"
	querySignedHeaders = "X-Amz-SignedHeaders"
	querySignature     = "X-Amz-Signature"
	querySecurityToken = "X-Amz-Security-Token"

	headerDate          = "X-Amz-Date"
	headerSecurityToken = "X-Amz-Security-Token"
)

// maxExpires is the longest X-Amz-Expires AWS accepts: 7 days.
const maxExpires = 7 * 24 * time.Hour

// defaultExpires is a presigned URL's lifetime when it names none.
const defaultExpires = 15 * time.Minute

// signature is what a request claims about its signature, taken from the
// Authorization header or from a presigned URL's query string.
type signature struct {
	presigned bool
	// The credential scope: AccessKeyID/Date/Region/Service/aws4_request.
	accessKeyID, scopeDate, region, service string
	// signedHeaders are the lowercase names, in the order given (in
	// names when they fit: the usual list costs no allocation).
	signedHeaders []string
	names         [8]string
	// signedHeadersRaw is the list as written (a;b;c).
	signedHeadersRaw string
	// value is the hex signature.
	value string
	// date is X-Amz-Date as written, and parsed.
	dateRaw string
	date    time.Time
	// expires is X-Amz-Expires (presigned URLs only).
	expires time.Duration
	// token is X-Amz-Security-Token ("" when absent).
	token string
}

// parse reads the signature of r: the Authorization header when there is
// one, else the query string when it carries SigV4 parameters. A request
// with neither is ErrMissingAuthentication.
func parse(r *auth.Request) (*signature, error) {
	s := &signature{}
	if err := parseInto(s, r); err != nil {
		return nil, err
	}
	return s, nil
}

// parseInto is parse into s.
func parseInto(s *signature, r *auth.Request) error {
	if h := headerValue(r, "Authorization"); h != "" {
		if err := parseAuthorization(s, h); err != nil {
			return err
		}
		s.dateRaw = headerValue(r, headerDate)
		if s.dateRaw == "" {
			return incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=" + sanitize(h))
		}
		s.token = headerValue(r, headerSecurityToken)
		return s.parseDate()
	}
	q := r.QueryValues()
	if q.Get(querySignature) == "" && q.Get(queryAlgorithm) == "" && q.Get(queryCredential) == "" {
		return &auth.Error{Kind: auth.ErrForbidden, Type: TypeMissingAuthenticationToken,
			Message: "Missing Authentication Token", Err: ErrMissingAuthentication}
	}
	return parseQuery(s, q)
}

// headerValue is the first value of header name, "" if absent. name is
// in canonical form (every caller's is a constant), so the map is read
// directly, which is what Header.Get does after canonicalizing it.
func headerValue(r *auth.Request, name string) string {
	if vs := r.Header[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// parseAuthorization reads
//
//	AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/execute-api/aws4_request, SignedHeaders=host;x-amz-date, Signature=<64 hex>
//
// Parameters are separated by commas, with optional spaces; each appears
// once; unknown ones are refused, as AWS does.
func parseAuthorization(s *signature, h string) error {
	alg, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if alg != algorithm {
		return incomplete(fmt.Sprintf("Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization=%s", sanitize(h)))
	}
	var cred string
	var haveCred, haveHeaders, haveSig bool
	for part := range strings.SplitSeq(rest, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return incomplete(fmt.Sprintf("Invalid key=value pair (missing equal-sign) in Authorization header: '%s'.", sanitize(part)))
		}
		var seen *bool
		switch k {
		case "Credential":
			cred, seen = v, &haveCred
		case "SignedHeaders":
			s.signedHeadersRaw, seen = v, &haveHeaders
		case "Signature":
			s.value, seen = v, &haveSig
		default:
			return incomplete(fmt.Sprintf("Unknown parameter '%s' in Authorization header.", sanitize(k)))
		}
		if *seen {
			return incomplete(fmt.Sprintf("Duplicate parameter '%s' in Authorization header.", k))
		}
		*seen = true
	}
	var missing []string
	if !haveCred {
		missing = append(missing, "Authorization header requires 'Credential' parameter.")
	}
	if !haveSig {
		missing = append(missing, "Authorization header requires 'Signature' parameter.")
	}
	if !haveHeaders {
		missing = append(missing, "Authorization header requires 'SignedHeaders' parameter.")
	}
	if len(missing) > 0 {
		return incomplete(strings.Join(missing, " ") + " Authorization=" + sanitize(h))
	}
	if err := s.parseCredential(cred); err != nil {
		return err
	}
	if err := s.parseSignedHeaders(); err != nil {
		return err
	}
	return s.checkSignatureForm()
}

// parseQuery reads a presigned URL's parameters.
func parseQuery(s *signature, q url.Values) error {
	var missing []string
	for _, k := range []string{queryAlgorithm, queryCredential, querySignature, querySignedHeaders, queryDate} {
		if len(q[k]) == 0 {
			missing = append(missing, "'"+k+"'")
		}
	}
	if len(missing) > 0 {
		return incomplete("AWS query-string parameters must include " + strings.Join(missing, ", ") + ". Re-examine the query-string parameters.")
	}
	for _, k := range []string{queryAlgorithm, queryCredential, querySignature, querySignedHeaders, queryDate, queryExpires, querySecurityToken} {
		if len(q[k]) > 1 {
			return incomplete(fmt.Sprintf("Duplicate query-string parameter '%s'.", k))
		}
	}
	if a := q.Get(queryAlgorithm); a != algorithm {
		return incomplete(fmt.Sprintf("X-Amz-Algorithm only supports \"%s\", not \"%s\".", algorithm, sanitize(a)))
	}
	*s = signature{presigned: true, signedHeadersRaw: q.Get(querySignedHeaders), value: q.Get(querySignature),
		dateRaw: q.Get(queryDate), token: q.Get(querySecurityToken), expires: defaultExpires}
	if err := s.parseCredential(q.Get(queryCredential)); err != nil {
		return err
	}
	if err := s.parseSignedHeaders(); err != nil {
		return err
	}
	if err := s.checkSignatureForm(); err != nil {
		return err
	}
	if err := s.parseDate(); err != nil {
		return err
	}
	if e, ok := q[queryExpires]; ok {
		n, err := strconv.ParseInt(e[0], 10, 64)
		switch {
		case err != nil || n < 0:
			return incomplete(fmt.Sprintf("X-Amz-Expires should be a number of seconds, not '%s'.", sanitize(e[0])))
		case n > int64(maxExpires/time.Second):
			return incomplete(fmt.Sprintf("X-Amz-Expires must be less than a week (in seconds) that is 604800, not %d.", n))
		}
		s.expires = time.Duration(n) * time.Second
	}
	return nil
}

// parseCredential splits AccessKeyID/Date/Region/Service/aws4_request.
func (s *signature) parseCredential(cred string) error {
	var parts [5]string
	n := 0
	for part := range strings.SplitSeq(cred, "/") {
		if n < len(parts) {
			parts[n] = part
		}
		n++
	}
	if n != len(parts) {
		return incomplete(fmt.Sprintf("Credential should be scoped to a valid region, service and terminator: 'AccessKeyId/YYYYMMDD/region/execute-api/aws4_request', not '%s'.", sanitize(cred)))
	}
	if parts[4] != terminator {
		return incomplete(fmt.Sprintf("Credential should be scoped with a valid terminator: 'aws4_request', not '%s'. ", sanitize(parts[4])))
	}
	if parts[0] == "" {
		return incomplete("Credential names no access key id.")
	}
	if len(parts[1]) != 8 {
		return incomplete(fmt.Sprintf("Credential should be scoped to a date in YYYYMMDD form, not '%s'.", sanitize(parts[1])))
	}
	s.accessKeyID, s.scopeDate, s.region, s.service = parts[0], parts[1], parts[2], parts[3]
	return nil
}

// parseSignedHeaders splits a;b;c. Names must be lowercase, without
// spaces, each once; host must be among them.
func (s *signature) parseSignedHeaders() error {
	if s.signedHeadersRaw == "" {
		return incomplete("SignedHeaders names no header: 'host' must be signed.")
	}
	names := s.names[:0]
	var seen map[string]bool // past len(s.names) names; a scan before
	host := false
	for n := range strings.SplitSeq(s.signedHeadersRaw, ";") {
		if n == "" || !validHeaderName(n) || strings.ToLower(n) != n {
			return incomplete(fmt.Sprintf("SignedHeaders must be lowercase header names separated by ';', not '%s'.", sanitize(s.signedHeadersRaw)))
		}
		// The usual two to four names are scanned; a long list goes into
		// a map, so that its check stays linear.
		if len(names) == len(s.names) {
			seen = make(map[string]bool, 2*len(names))
			for _, m := range names {
				seen[m] = true
			}
		}
		if seen != nil && seen[n] || seen == nil && slices.Contains(names, n) {
			return incomplete(fmt.Sprintf("SignedHeaders names '%s' twice.", n))
		}
		if seen != nil {
			seen[n] = true
		}
		names = append(names, n)
		host = host || n == "host"
	}
	if !host {
		return incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
	}
	s.signedHeaders = names
	return nil
}

// checkSignatureForm refuses a signature that is not 64 lowercase hex
// digits: no such signature can match.
func (s *signature) checkSignatureForm() error {
	if len(s.value) != 64 {
		return mismatch("the signature is not 64 hex digits")
	}
	for i := 0; i < len(s.value); i++ {
		c := s.value[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return mismatch("the signature is not lowercase hex")
		}
	}
	return nil
}

// parseDate reads X-Amz-Date and checks that the credential scope names
// the same day.
func (s *signature) parseDate() error {
	t, ok := parseAmzDate(s.dateRaw)
	if !ok {
		return incomplete(fmt.Sprintf("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\", not '%s'.", sanitize(s.dateRaw)))
	}
	s.date = t
	if day := s.dateRaw[:8]; s.scopeDate != day {
		return &auth.Error{Kind: auth.ErrForbidden, Type: TypeInvalidSignature, Err: ErrCredentialScope,
			Message: fmt.Sprintf("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.",
				sanitize(s.scopeDate), day, s.dateRaw)}
	}
	return nil
}

// parseAmzDate reads an X-Amz-Date, 20060102T150405Z, in UTC: exactly
// what time.Parse(amzDateFormat, v) accepts (sixteen bytes, every field
// its digits, each in range, the day in its month), without reading the
// layout. FuzzAmzDate holds the two to the same answers.
func parseAmzDate(v string) (time.Time, bool) {
	if len(v) != len(amzDateFormat) || v[8] != 'T' || v[15] != 'Z' {
		return time.Time{}, false
	}
	num := func(i, j int) (int, bool) {
		n := 0
		for ; i < j; i++ {
			c := v[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	y, ok1 := num(0, 4)
	mo, ok2 := num(4, 6)
	d, ok3 := num(6, 8)
	h, ok4 := num(9, 11)
	mi, ok5 := num(11, 13)
	sec, ok6 := num(13, 15)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(mo), d, h, mi, sec, 0, time.UTC)
	if t.Day() != d { // past the month's last day: time.Date moved it on
		return time.Time{}, false
	}
	return t, true
}

// validHeaderName reports whether n is an HTTP token (RFC 9110).
func validHeaderName(n string) bool {
	for i := 0; i < len(n); i++ {
		c := n[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// sanitize bounds what a message repeats of the request: at most 256
// bytes, control characters replaced, so an error never carries a
// newline or a huge header into a log line.
func sanitize(s string) string {
	const maxLen = 256
	if len(s) > maxLen {
		s = s[:maxLen] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// wirePath is the path as it was sent: RawPath when the transport kept
// it, otherwise Path in its default escaping (which is what was sent when
// the transport saw no need for RawPath).
func wirePath(r *auth.Request) string {
	if r.RawPath != "" {
		return r.RawPath
	}
	p := (&url.URL{Path: r.Path}).EscapedPath()
	if p == "" {
		return "/"
	}
	return p
}

// stripSignature removes X-Amz-Signature from a raw query string, keeping
// every other pair as sent.
func stripSignature(raw string) string {
	var b strings.Builder
	b.Grow(len(raw))
	for pair := range strings.SplitSeq(raw, "&") {
		k, _, _ := strings.Cut(pair, "=")
		if uk, err := url.QueryUnescape(k); err == nil && uk == querySignature {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(pair)
	}
	return b.String()
}
