package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"hash"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portico-gateway/portico/routing/auth"
)

// This file signs a header-form request the way aws-sdk-go-v2's signer
// (v4.Signer.SignHTTP) does, without building an http.Request, maps or
// the intermediate strings: the canonical request goes into one pooled
// buffer, and the signing key of a (key, day) is derived once. The SDK
// stays the reference: FuzzSignatureMatchesSDK and
// TestSignatureMatchesSDK hold both signers to the same signature and
// signed-header list for random requests.

// derivedKey is a key's signing key for one day (region and service are
// the Verifier's), with HMACs keyed with it, reset and reused.
type derivedKey struct {
	day  string // 20060102
	key  [sha256.Size]byte
	macs sync.Pool // of *mac: hmac.New(sha256.New, key)
}

// keyState is what the verifier keeps per access key.
type keyState struct {
	key     *Key
	derived atomic.Pointer[derivedKey]
}

// signingKey returns the key's signing key for day: HMAC("AWS4"+secret,
// day, region, service, "aws4_request"), derived once per day (the
// newest day is kept; a request of the day before derives it again).
func (v *Verifier) signingKey(ks *keyState, dayBytes []byte) *derivedKey {
	if d := ks.derived.Load(); d != nil && d.day == string(dayBytes) {
		return d
	}
	day := string(dayBytes)
	d := &derivedKey{day: day}
	k := hmacSum([]byte("AWS4"+ks.key.SecretAccessKey), day)
	k = hmacSum(k, v.region)
	k = hmacSum(k, v.service)
	copy(d.key[:], hmacSum(k, terminator))
	d.macs.New = func() any { return &mac{h: hmac.New(sha256.New, d.key[:])} }
	if cur := ks.derived.Load(); cur == nil || cur.day < day {
		ks.derived.Store(d)
	}
	return d
}

// mac is a pooled HMAC keyed with a signing key, and room for its sum
// (a sum through the hash.Hash interface would otherwise escape).
type mac struct {
	h   hash.Hash
	sum [sha256.Size]byte
}

// sign writes hex(HMAC(signing key, msg)) into out.
func (d *derivedKey) sign(out *[2 * sha256.Size]byte, msg []byte) {
	m := d.macs.Get().(*mac)
	m.h.Reset()
	m.h.Write(msg)
	hex.Encode(out[:], m.h.Sum(m.sum[:0]))
	d.macs.Put(m)
}

func hmacSum(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

// canonicalBuffers hold canonical requests while they are hashed.
var canonicalBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// headerSignature is the signature of a header-form request r with
// signature s: its hex value and the signed-header list it covers
// (sorted, deduplicated, with what the SDK always adds), or a refusal
// for a request that cannot be signed at all. Verify uses
// checkHeaderSignature, which makes neither string.
func (v *Verifier) headerSignature(r *auth.Request, s *signature, ks *keyState) (sig []byte, signedHeaders string, err error) {
	var out [2 * sha256.Size]byte
	bp, signed, err := v.signHeaders(r, s, ks, &out)
	if err != nil {
		return nil, "", err
	}
	signedHeaders = string(signed)
	releaseCanonical(bp)
	return out[:], signedHeaders, nil
}

// checkHeaderSignature signs a header-form request again and compares
// the signatures in constant time.
func (v *Verifier) checkHeaderSignature(r *auth.Request, s *signature, ks *keyState) error {
	var sig [2 * sha256.Size]byte
	bp, signed, err := v.signHeaders(r, s, ks, &sig)
	if err != nil {
		return err
	}
	defer releaseCanonical(bp)
	if subtle.ConstantTimeCompare(sig[:], []byte(s.value)) == 1 {
		return nil
	}
	return mismatchSigned(s, string(signed))
}

// releaseCanonical returns a canonical-request buffer to its pool.
func releaseCanonical(bp *[]byte) {
	if cap(*bp) <= 64<<10 {
		canonicalBuffers.Put(bp)
	}
}

// signHeaders writes the signature of a header-form request into out and
// returns the pooled buffer it used (for releaseCanonical) and, inside
// it, the signed-header list the signature covers.
func (v *Verifier) signHeaders(r *auth.Request, s *signature, ks *keyState, out *[2 * sha256.Size]byte) (bp *[]byte, signedHeaders []byte, err error) {
	bp = canonicalBuffers.Get().(*[]byte)
	b := (*bp)[:0]
	fail := func(err error) (*[]byte, []byte, error) {
		releaseCanonical(bp)
		return nil, nil, err
	}

	// Which headers are signed, as the SDK ends up with them: host
	// always, content-length when listed (and positive), x-amz-date
	// always, x-amz-security-token when listed and sent, the others as
	// listed; sorted, each once.
	var names [16]string
	list := names[:0]
	list = append(list, "host", "x-amz-date")
	dateSigned := false
	var contentLength int64
	for _, h := range s.signedHeaders {
		switch h {
		case "host":
			continue
		case "x-amz-date":
			dateSigned = true
			continue
		case "x-amz-security-token":
			if s.token == "" {
				continue
			}
		case "content-length":
			n, perr := strconv.ParseInt(headerValue(r, "Content-Length"), 10, 64)
			if perr != nil || n <= 0 {
				// The SDK only signs a positive length; AWS SDKs never
				// sign "0" (they leave content-length out).
				return fail(mismatch("content-length is signed but is not a positive number"))
			}
			contentLength = n
		}
		list = append(list, h)
	}
	if !dateSigned {
		return fail(incomplete("'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization."))
	}
	slices.Sort(list)
	list = slices.Compact(list)

	host := r.Host
	if host == "" {
		host = headerValue(r, "Host")
	}
	// The SDK keeps the host as given: it drops only a default port
	// of the URL's scheme, and the URL it signs has none.
	path := uriPath(host, wirePath(r))

	// Method, URI, query.
	b = append(b, r.Method...)
	b = append(b, '\n')
	b = appendEscapedPath(b, path)
	b = append(b, '\n')
	if r.RawQuery != "" {
		b = append(b, canonicalQuery(r.RawQuery)...)
	}
	b = append(b, '\n')
	// Canonical headers.
	var amzDate [len(amzDateFormat)]byte
	date := appendAmzDate(amzDate[:0], s.date.UTC())
	for _, h := range list {
		b = append(b, h...)
		b = append(b, ':')
		switch h {
		case "host":
			b = appendStripped(b, host, false)
		case "x-amz-date":
			b = append(b, date...)
		case "x-amz-security-token":
			b = appendStripped(b, s.token, true)
		case "content-length":
			b = strconv.AppendInt(b, contentLength, 10)
		default:
			vals := []string{""}
			if r.Header != nil {
				if vs := r.Header.Values(h); len(vs) > 0 {
					vals = vs
				}
			}
			for i, val := range vals {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendStripped(b, val, true)
			}
		}
		b = append(b, '\n')
	}
	b = append(b, '\n')
	start := len(b)
	for i, h := range list {
		if i > 0 {
			b = append(b, ';')
		}
		b = append(b, h...)
	}
	end := len(b)
	b = append(b, '\n')
	sum := sha256.Sum256(r.Body)
	b = hex.AppendEncode(b, sum[:])
	canonical := sha256.Sum256(b)

	// The string to sign, after the canonical request in the same buffer
	// (which keeps the signed-header list for the caller).
	b = b[:end]
	sts := len(b)
	b = append(b, algorithm+"\n"...)
	b = append(b, date...)
	b = append(b, '\n')
	day := date[:8]
	b = append(b, day...)
	b = append(b, '/')
	b = append(b, v.region...)
	b = append(b, '/')
	b = append(b, v.service...)
	b = append(b, "/"+terminator+"\n"...)
	b = hex.AppendEncode(b, canonical[:])
	v.signingKey(ks, day).sign(out, b[sts:])
	*bp = b
	return bp, b[start:end], nil
}

// appendAmzDate appends t (UTC) as X-Amz-Date writes it,
// 20060102T150405Z; what time.Format does for years of four digits,
// without reading the layout.
func appendAmzDate(b []byte, t time.Time) []byte {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, amzDateFormat)
	}
	return append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10),
		byte('0'+int(mo)/10), byte('0'+int(mo)%10), byte('0'+d/10), byte('0'+d%10), 'T',
		byte('0'+h/10), byte('0'+h%10), byte('0'+mi/10), byte('0'+mi%10), byte('0'+s/10), byte('0'+s%10), 'Z')
}

// uriPath is the path the SDK signs of the URL {Opaque: "//" + host +
// path}: cut at the first '?', from the first '/' after the "//"; "/"
// when there is none (v4Internal.GetURIPath).
func uriPath(host, path string) string {
	if i := strings.IndexByte(host, '?'); i >= 0 {
		if j := strings.IndexByte(host[:i], '/'); j >= 0 {
			return host[j:i]
		}
		return "/"
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if j := strings.IndexByte(host, '/'); j >= 0 {
		return host[j:] + path
	}
	if j := strings.IndexByte(path, '/'); j >= 0 {
		return path[j:]
	}
	return "/"
}

const upperHex = "0123456789ABCDEF"

// appendEscapedPath escapes every byte but the unreserved ones and '/'
// (httpbinding.EscapePath(p, false)).
func appendEscapedPath(b []byte, p string) []byte {
	for i := 0; i < len(p); {
		// Runs of bytes kept as they are are copied at once.
		j := i
		for j < len(p) && pathKept[p[j]] {
			j++
		}
		b = append(b, p[i:j]...)
		if j == len(p) {
			break
		}
		c := p[j]
		b = append(b, '%', upperHex[c>>4], upperHex[c&0xf])
		i = j + 1
	}
	return b
}

// pathKept marks the bytes appendEscapedPath keeps: the unreserved ones
// and '/'.
var pathKept = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' || c == '/'
	}
	return t
}()

// appendStripped appends v with leading and trailing spaces removed and
// inner runs of spaces made one (v4Internal.StripExcessSpaces), then,
// when trim, strings.TrimSpace.
func appendStripped(b []byte, v string, trim bool) []byte {
	j := len(v) - 1
	for j >= 0 && v[j] == ' ' {
		j--
	}
	k := 0
	for k < j && v[k] == ' ' {
		k++
	}
	v = v[k : j+1]
	if trim {
		v = strings.TrimSpace(v)
	}
	if !strings.Contains(v, "  ") {
		return append(b, v...)
	}
	space := false
	for i := 0; i < len(v); i++ {
		if v[i] == ' ' {
			if !space {
				b = append(b, ' ')
			}
			space = true
			continue
		}
		space = false
		b = append(b, v[i])
	}
	return b
}

// canonicalQuery is the query the SDK signs: parsed as url.URL.Query
// parses it (malformed pairs dropped), each key and value escaped
// (RFC 3986: %20 for a space), sorted by key, then value.
func canonicalQuery(raw string) string {
	q, _ := url.ParseQuery(raw)
	type param struct{ k, v string }
	params := make([]param, 0, len(q))
	for k, vs := range q {
		ek := queryEscape(k)
		for _, val := range vs {
			params = append(params, param{ek, queryEscape(val)})
		}
	}
	slices.SortFunc(params, func(a, b param) int {
		if c := strings.Compare(a.k, b.k); c != 0 {
			return c
		}
		return strings.Compare(a.v, b.v)
	})
	var sb strings.Builder
	for i, p := range params {
		if i > 0 {
			sb.WriteByte('&')
		}
		sb.WriteString(p.k)
		sb.WriteByte('=')
		sb.WriteString(p.v)
	}
	return sb.String()
}

func queryEscape(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
