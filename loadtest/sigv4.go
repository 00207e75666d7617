package loadtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/portico-gateway/portico/management/client"
)

// postSigner signs @connections POSTs with AWS Signature Version 4 as
// management/client (and the AWS SDKs) do: service execute-api, the
// connection id escaped as one path segment with every byte outside
// A-Z a-z 0-9 - _ . ~ as %XX, the path escaped once more for the
// canonical request, and host and X-Amz-Date signed. Its output is the
// header lines to add to the request the keep-alive client writes.
type postSigner struct {
	creds  aws.Credentials
	region string
	signer *v4.Signer
}

func newPostSigner(accessKey, secretKey, region string) *postSigner {
	return &postSigner{
		creds:  aws.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey, Source: "portico-load"},
		region: region,
		signer: v4.NewSigner(),
	}
}

// sign returns the header lines ("Name: value\r\n"...) that sign a POST
// of body to host and the path base + connectionID, where base is the
// stage's @connections path ("/dev/@connections/") and rawBase its
// escaped form.
func (s *postSigner) sign(ctx context.Context, host, base, rawBase, connectionID string, body []byte, now time.Time) ([]byte, error) {
	req := &http.Request{
		Method: http.MethodPost,
		URL: &url.URL{Scheme: "http", Host: host, Path: base + connectionID,
			RawPath: rawBase + client.EscapeConnectionID(connectionID)},
		Host:   host,
		Header: http.Header{},
	}
	sum := sha256.Sum256(body)
	if err := s.signer.SignHTTP(ctx, s.creds, req, hex.EncodeToString(sum[:]), client.SigningName, s.region, now); err != nil {
		return nil, fmt.Errorf("signing a POST: %w", err)
	}
	var out []byte
	for _, name := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token"} {
		if v := req.Header.Get(name); v != "" {
			out = append(out, name+": "+v+"\r\n"...)
		}
	}
	return out, nil
}
