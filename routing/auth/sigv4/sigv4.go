// Package sigv4 verifies AWS Signature Version 4 the way Amazon API
// Gateway does for IAM-authorized calls to the service "execute-api":
// @connections calls from AWS SDKs, signed HTTP requests, and presigned
// WebSocket connect URLs.
//
// A Verifier knows a set of access keys and one region. For each request
// it reads the signature (the Authorization header, or the X-Amz-*
// query-string parameters of a presigned URL), checks the credential
// scope ({date}/{region}/execute-api/aws4_request), the time, the key and
// the signed headers (host must be signed), then signs the request again
// with the caller's key and the caller's timestamp and compares the two
// signatures in constant time. A header-form signature (every SDK call)
// is computed here, with the SDK's algorithm and a signing key derived
// once per key and day (7 allocations a verification); a presigned URL
// is signed by the SDK's signer (github.com/aws/aws-sdk-go-v2/aws/signer/v4).
// The SDK's signer stays the reference: a differential fuzz target holds
// the two to the same signature for random requests.
//
// What this package reads of the request, and how:
//
//   - The canonical URI is the path exactly as it was sent, each segment
//     URI-encoded once more (execute-api is not S3): a connection id sent
//     as abc%3D is signed as abc%253D, which is what the AWS SDKs do.
//   - The canonical query is the query string, decoded and re-encoded the
//     SigV4 way (sorted, RFC 3986 escaping); a presigned URL's
//     X-Amz-Signature is left out.
//   - The canonical headers are the signed headers, in lowercase, values
//     trimmed and inner spaces collapsed, repeated headers joined with ','.
//     X-Amz-Date must be signed when the signature is in the header (every
//     AWS SDK signs it; the Date header is not accepted in its place).
//   - The payload hash is the SHA-256 of the body. A presigned URL may
//     instead have been signed with UNSIGNED-PAYLOAD; the header form may
//     not, as in AWS for execute-api.
//   - Times: a header signature is good within 5 minutes either side of
//     X-Amz-Date. A presigned URL is good from 15 minutes before its
//     X-Amz-Date (clock skew) until X-Amz-Date + X-Amz-Expires (default
//     15 minutes, at most 7 days).
//   - X-Amz-Security-Token, when sent, must equal the key's session token;
//     a key with a session token needs it on every request.
//
// Every refusal is an *auth.Error of kind auth.ErrForbidden carrying the
// error type and message AWS sends (for example InvalidSignatureException
// and "The request signature we calculated does not match the signature
// you provided. ..."), and wrapping one of this package's sentinels.
//
// Authorizer (NewAuthorizer) adds each key's policy: which APIs, stages,
// routes and actions (@connections post, get, delete; invoke; admin) it
// may use.
package sigv4

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/portico-gateway/portico/routing/auth"
)

// Service is the SigV4 service name of API Gateway's execute-api.
const Service = "execute-api"

// Sentinel errors; every refusal wraps exactly one of them (and
// auth.ErrForbidden).
var (
	// ErrMissingAuthentication: no Authorization header and no
	// X-Amz-Signature. AWS: 403 "Missing Authentication Token".
	ErrMissingAuthentication = errors.New("sigv4: no signature")
	// ErrIncompleteSignature: the Authorization header or the query
	// parameters are malformed or incomplete.
	ErrIncompleteSignature = errors.New("sigv4: malformed signature")
	// ErrUnknownKey: the access key id is not configured, or the security
	// token does not belong to it. AWS: 403 "The security token included
	// in the request is invalid."
	ErrUnknownKey = errors.New("sigv4: unknown access key")
	// ErrSignatureMismatch: the signature is not the one the key makes
	// for this request (wrong secret, tampered path, query, header or body).
	ErrSignatureMismatch = errors.New("sigv4: signature mismatch")
	// ErrSignatureExpired: X-Amz-Date is too old (or a presigned URL has
	// expired). AWS: "Signature expired: ..."
	ErrSignatureExpired = errors.New("sigv4: signature expired")
	// ErrSignatureNotYetCurrent: X-Amz-Date is too far in the future.
	ErrSignatureNotYetCurrent = errors.New("sigv4: signature not yet current")
	// ErrCredentialScope: the credential scope names another region,
	// service or day.
	ErrCredentialScope = errors.New("sigv4: wrong credential scope")
	// ErrNotAllowed: the signature is good but the key's policy does not
	// allow the request (Authorizer only).
	ErrNotAllowed = errors.New("sigv4: not allowed by the key's policy")
)

// Error types, as API Gateway names them in x-amzn-ErrorType.
const (
	TypeMissingAuthenticationToken = "MissingAuthenticationTokenException"
	TypeIncompleteSignature        = "IncompleteSignatureException"
	TypeInvalidSignature           = "InvalidSignatureException"
	TypeUnrecognizedClient         = "UnrecognizedClientException"
	TypeForbidden                  = "ForbiddenException"
)

// MessageSignatureMismatch is AWS's message for a wrong signature.
const MessageSignatureMismatch = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."

// MessageUnknownKey is AWS's message for an access key it does not know.
const MessageUnknownKey = "The security token included in the request is invalid."

// Skews: how far X-Amz-Date may be from now.
const (
	headerSkew    = 5 * time.Minute
	presignedSkew = 15 * time.Minute
)

// Key is an access key the verifier accepts.
type Key struct {
	// AccessKeyID names the key, e.g. AKIDPORTICO. Required.
	AccessKeyID string
	// SecretAccessKey signs. Required.
	SecretAccessKey string
	// SessionToken, when set, must come with every request as
	// X-Amz-Security-Token. Default "": requests carry none.
	SessionToken string
	// Allow lists what the key may do (Authorizer only). Empty: everything.
	Allow []Grant
}

// Options configure a Verifier.
type Options struct {
	// Region the credential scope must name, e.g. "us-east-1". Required.
	Region string
	// Service the credential scope must name. Default "execute-api".
	Service string
	// Keys are the access keys accepted. At least one.
	Keys []Key
	// Now is the clock. nil: time.Now.
	Now func() time.Time
}

// Verifier checks SigV4 signatures. It is safe for concurrent use.
type Verifier struct {
	region, service string
	keys            map[string]*keyState
	now             func() time.Time
	signer          *v4.Signer
}

// New returns a Verifier. One without keys refuses every request: an
// unsigned one as missing authentication, a signed one as an unknown key.
func New(opts Options) (*Verifier, error) {
	if opts.Region == "" {
		return nil, errors.New("sigv4: a region is required")
	}
	v := &Verifier{region: opts.Region, service: opts.Service, keys: make(map[string]*keyState, len(opts.Keys)), now: opts.Now}
	if v.service == "" {
		v.service = Service
	}
	if v.now == nil {
		v.now = time.Now
	}
	for i := range opts.Keys {
		k := opts.Keys[i]
		switch {
		case k.AccessKeyID == "" || strings.ContainsAny(k.AccessKeyID, "/ ,="):
			return nil, fmt.Errorf("sigv4: key %d: the access key id must be non-empty, without '/', ',', '=' or spaces", i)
		case k.SecretAccessKey == "":
			return nil, fmt.Errorf("sigv4: key %q: no secret access key", k.AccessKeyID)
		case v.keys[k.AccessKeyID] != nil:
			return nil, fmt.Errorf("sigv4: key %q is given twice", k.AccessKeyID)
		}
		for _, g := range k.Allow {
			for _, a := range g.Actions {
				if !validAction(a) {
					return nil, fmt.Errorf("sigv4: key %q: unknown action %q (want %s)", k.AccessKeyID, a, strings.Join(Actions, ", "))
				}
			}
		}
		v.keys[k.AccessKeyID] = &keyState{key: &k}
	}
	// The signer must not hoist headers into a presigned query: the
	// verifier hands it exactly the headers the caller signed.
	v.signer = v4.NewSigner(func(o *v4.SignerOptions) { o.DisableHeaderHoisting = true })
	return v, nil
}

// Region returns the region signatures must be scoped to.
func (v *Verifier) Region() string { return v.region }

// Verify checks r's signature and returns the key that made it, or an
// *auth.Error wrapping auth.ErrForbidden and one of the sentinels above.
func (v *Verifier) Verify(ctx context.Context, r *auth.Request) (*Key, error) {
	s, err := parse(r)
	if err != nil {
		return nil, err
	}
	if err := v.checkScope(s); err != nil {
		return nil, err
	}
	if err := v.checkTime(s); err != nil {
		return nil, err
	}
	ks := v.keys[s.accessKeyID]
	if ks == nil {
		return nil, &auth.Error{Kind: auth.ErrForbidden, Type: TypeUnrecognizedClient, Message: MessageUnknownKey, Err: ErrUnknownKey}
	}
	// The token is compared like a secret: it is one for whoever holds it.
	if subtle.ConstantTimeCompare([]byte(s.token), []byte(ks.key.SessionToken)) != 1 {
		return nil, &auth.Error{Kind: auth.ErrForbidden, Type: TypeUnrecognizedClient, Message: MessageUnknownKey, Err: ErrUnknownKey}
	}
	if err := v.checkSignature(ctx, r, s, ks); err != nil {
		return nil, err
	}
	return ks.key, nil
}

// checkScope compares the credential scope's region and service with
// ours; AWS reports both problems in one message.
func (v *Verifier) checkScope(s *signature) error {
	var msg string
	if s.region != v.region {
		msg += fmt.Sprintf("Credential should be scoped to a valid region, not '%s'. ", sanitize(s.region))
	}
	if s.service != v.service {
		msg += fmt.Sprintf("Credential should be scoped to correct service: '%s'. ", v.service)
	}
	if msg != "" {
		return &auth.Error{Kind: auth.ErrForbidden, Type: TypeInvalidSignature, Message: msg, Err: ErrCredentialScope}
	}
	return nil
}

// checkTime applies the skews, with AWS's messages, e.g. "Signature
// expired: 20240101T000000Z is now earlier than 20240101T000100Z
// (20240101T000600Z - 5 min.)".
func (v *Verifier) checkTime(s *signature) error {
	now := v.now().UTC()
	skew := headerSkew
	if s.presigned {
		skew = presignedSkew
	}
	if s.date.After(now.Add(skew)) {
		return &auth.Error{Kind: auth.ErrForbidden, Type: TypeInvalidSignature, Err: ErrSignatureNotYetCurrent,
			Message: fmt.Sprintf("Signature not yet current: %s is still later than %s (%s + %d min.)",
				s.dateRaw, now.Add(skew).Format(amzDateFormat), now.Format(amzDateFormat), int(skew/time.Minute))}
	}
	if s.presigned {
		if end := s.date.Add(s.expires); now.After(end) {
			return &auth.Error{Kind: auth.ErrForbidden, Type: TypeInvalidSignature, Err: ErrSignatureExpired,
				Message: fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - %d sec.)",
					end.Format(amzDateFormat), now.Format(amzDateFormat), now.Format(amzDateFormat), int(s.expires/time.Second))}
		}
		return nil
	}
	if s.date.Before(now.Add(-skew)) {
		return &auth.Error{Kind: auth.ErrForbidden, Type: TypeInvalidSignature, Err: ErrSignatureExpired,
			Message: fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - %d min.)",
				s.dateRaw, now.Add(-skew).Format(amzDateFormat), now.Format(amzDateFormat), int(skew/time.Minute))}
	}
	return nil
}

// checkSignature signs the request again with the key and the caller's
// timestamp, and compares. The header form (every SDK call) is signed
// here (headerSignature, the SDK's algorithm); a presigned URL by the
// SDK's signer, from the request rebuilt as it was signed.
func (v *Verifier) checkSignature(ctx context.Context, r *auth.Request, s *signature, ks *keyState) error {
	if !s.presigned {
		return v.checkHeaderSignature(r, s, ks)
	}
	req, err := signable(r, s)
	if err != nil {
		return err
	}
	key := ks.key
	creds := aws.Credentials{AccessKeyID: key.AccessKeyID, SecretAccessKey: key.SecretAccessKey}
	sum := sha256.Sum256(r.Body)
	bodyHash := hex.EncodeToString(sum[:])
	// A presigned URL carries its token in the query already.
	var last error
	for _, payload := range []string{bodyHash, unsignedPayload} {
		u, _, err := v.signer.PresignHTTP(ctx, creds, req, payload, v.service, v.region, s.date)
		if err != nil {
			return fmt.Errorf("sigv4: signing: %w", err)
		}
		got, signed := fromPresignedURL(u)
		if last = compare(s, got, signed); last == nil {
			return nil
		}
	}
	return last
}

// signable is the request the SDK's signer sees (presigned URLs; the
// tests' reference for the header form): method, the path as sent, the
// query (without X-Amz-Signature for a presigned URL), Host and exactly
// the headers the caller signed.
func signable(r *auth.Request, s *signature) (*http.Request, error) {
	host := r.Host
	if host == "" {
		host = headerValue(r, "Host")
	}
	rawQuery := r.RawQuery
	if s.presigned {
		rawQuery = stripSignature(rawQuery)
	}
	u := &url.URL{Host: host, Opaque: "//" + host + wirePath(r), RawQuery: rawQuery}
	req := &http.Request{Method: r.Method, URL: u, Host: host, Header: make(http.Header, len(s.signedHeaders))}
	for _, h := range s.signedHeaders {
		switch h {
		case "host":
			// The signer takes it from req.Host.
		case "content-length":
			n, err := strconv.ParseInt(headerValue(r, "Content-Length"), 10, 64)
			if err != nil || n <= 0 {
				// The signer only signs a positive length; AWS SDKs never
				// sign "0" (they leave content-length out).
				return nil, mismatch("content-length is signed but is not a positive number")
			}
			req.ContentLength = n
		case "x-amz-date", "x-amz-security-token":
			// Header form: the signer sets both from the timestamp and
			// the credentials. Presigned: they are query parameters; a
			// header of that name is signed like any other.
			if s.presigned {
				req.Header[h] = headerValues(r, h)
			}
		default:
			// Lowercase keys: the signer signs every key it is given
			// (its list of headers it never signs holds canonical names).
			req.Header[h] = headerValues(r, h)
		}
	}
	if !s.presigned {
		dateSigned := false
		for _, h := range s.signedHeaders {
			dateSigned = dateSigned || h == "x-amz-date"
		}
		if !dateSigned {
			return nil, incomplete("'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.")
		}
	}
	return req, nil
}

// headerValues are the values of a signed header; a signed header that
// is absent is signed as empty.
func headerValues(r *auth.Request, name string) []string {
	if r.Header != nil {
		if vs := r.Header.Values(name); len(vs) > 0 {
			return vs
		}
	}
	return []string{""}
}

// fromAuthorization takes the signature and signed headers out of the
// Authorization header the signer wrote.
func fromAuthorization(h string) (sig, signedHeaders string) {
	_, after, _ := strings.Cut(h, "SignedHeaders=")
	signedHeaders, _, _ = strings.Cut(after, ",")
	_, sig, _ = strings.Cut(h, "Signature=")
	return sig, signedHeaders
}

// fromPresignedURL takes them out of the URL the signer wrote (it appends
// X-Amz-Signature last).
func fromPresignedURL(u string) (sig, signedHeaders string) {
	i := strings.LastIndex(u, "&"+querySignature+"=")
	if i < 0 {
		return "", ""
	}
	sig = u[i+len(querySignature)+2:]
	if j := strings.Index(u, querySignedHeaders+"="); j >= 0 {
		rest := u[j+len(querySignedHeaders)+1:]
		if k := strings.IndexByte(rest, '&'); k >= 0 {
			rest = rest[:k]
		}
		signedHeaders, _ = url.QueryUnescape(rest)
	}
	return sig, signedHeaders
}

// compare checks the signature in constant time.
func compare(s *signature, got, signedHeaders string) error {
	return compareBytes(s, []byte(got), signedHeaders)
}

func compareBytes(s *signature, got []byte, signedHeaders string) error {
	if subtle.ConstantTimeCompare(got, []byte(s.value)) == 1 {
		return nil
	}
	return mismatchSigned(s, signedHeaders)
}

// mismatchSigned is the refusal of a signature that did not match, when
// the signer covered signedHeaders.
func mismatchSigned(s *signature, signedHeaders string) error {
	if signedHeaders != s.signedHeadersRaw {
		// The signer signed other headers than the caller listed (an
		// unsorted list, a header the caller signed twice): say so in
		// the cause, which goes to logs, not to the caller.
		return mismatch(fmt.Sprintf("the signed headers %q are not in canonical form (want %q)", s.signedHeadersRaw, signedHeaders))
	}
	return mismatch("")
}

// mismatch is AWS's answer to a wrong signature; detail (never a
// secret) goes into the cause for logs.
func mismatch(detail string) error {
	cause := ErrSignatureMismatch
	if detail != "" {
		cause = fmt.Errorf("%w: %s", ErrSignatureMismatch, detail)
	}
	return &auth.Error{Kind: auth.ErrForbidden, Type: TypeInvalidSignature, Message: MessageSignatureMismatch, Err: cause}
}

// incomplete is AWS's answer to a malformed signature.
func incomplete(msg string) error {
	return &auth.Error{Kind: auth.ErrForbidden, Type: TypeIncompleteSignature, Message: msg, Err: ErrIncompleteSignature}
}
