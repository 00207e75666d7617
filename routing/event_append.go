package routing

import (
	"encoding/json"
	"strconv"

	"github.com/portico-gateway/portico/internal/jsonenc"
)

// AppendJSON implements integration.Appender: the event as encoding/json
// writes it (TestEventAppendJSON and FuzzEventAppendJSON hold the two
// equal), without reflection and the maps' sorting — an HTTP
// integration encodes one per message.
func (e *Event) AppendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	if len(e.Headers) > 0 {
		dst = append(dst, `"headers":`...)
		dst = append(jsonenc.AppendStringMap(dst, e.Headers), ',')
	}
	if len(e.MultiValueHeaders) > 0 {
		dst = append(dst, `"multiValueHeaders":`...)
		dst = append(jsonenc.AppendStringsMap(dst, e.MultiValueHeaders), ',')
	}
	if len(e.QueryStringParameters) > 0 {
		dst = append(dst, `"queryStringParameters":`...)
		dst = append(jsonenc.AppendStringMap(dst, e.QueryStringParameters), ',')
	}
	if len(e.MultiValueQueryStringParameters) > 0 {
		dst = append(dst, `"multiValueQueryStringParameters":`...)
		dst = append(jsonenc.AppendStringsMap(dst, e.MultiValueQueryStringParameters), ',')
	}
	if len(e.StageVariables) > 0 {
		dst = append(dst, `"stageVariables":`...)
		dst = append(jsonenc.AppendStringMap(dst, e.StageVariables), ',')
	}
	dst = append(dst, `"requestContext":`...)
	dst = e.RequestContext.appendJSON(dst)
	if e.Body != nil {
		dst = append(dst, `,"body":`...)
		dst = jsonenc.AppendString(dst, *e.Body)
	}
	if e.IsBase64Encoded {
		return append(dst, `,"isBase64Encoded":true}`...)
	}
	return append(dst, `,"isBase64Encoded":false}`...)
}

func (rc *RequestContext) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"routeKey":`...)
	dst = jsonenc.AppendString(dst, rc.RouteKey)
	if rc.DisconnectStatusCode != nil {
		dst = append(dst, `,"disconnectStatusCode":`...)
		dst = strconv.AppendInt(dst, int64(*rc.DisconnectStatusCode), 10)
	}
	if rc.MessageID != "" {
		dst = append(dst, `,"messageId":`...)
		dst = jsonenc.AppendString(dst, rc.MessageID)
	}
	dst = append(dst, `,"eventType":`...)
	dst = jsonenc.AppendString(dst, rc.EventType)
	dst = append(dst, `,"extendedRequestId":`...)
	dst = jsonenc.AppendString(dst, rc.ExtendedRequestID)
	dst = append(dst, `,"requestTime":`...)
	dst = jsonenc.AppendString(dst, rc.RequestTime)
	dst = append(dst, `,"messageDirection":`...)
	dst = jsonenc.AppendString(dst, rc.MessageDirection)
	if rc.DisconnectReason != nil {
		dst = append(dst, `,"disconnectReason":`...)
		dst = jsonenc.AppendString(dst, *rc.DisconnectReason)
	}
	dst = append(dst, `,"stage":`...)
	dst = jsonenc.AppendString(dst, rc.Stage)
	dst = append(dst, `,"connectedAt":`...)
	dst = strconv.AppendInt(dst, rc.ConnectedAt, 10)
	dst = append(dst, `,"requestTimeEpoch":`...)
	dst = strconv.AppendInt(dst, rc.RequestTimeEpoch, 10)
	dst = append(dst, `,"identity":{"sourceIp":`...)
	dst = jsonenc.AppendString(dst, rc.Identity.SourceIP)
	if rc.Identity.UserAgent != "" {
		dst = append(dst, `,"userAgent":`...)
		dst = jsonenc.AppendString(dst, rc.Identity.UserAgent)
	}
	if cc := rc.Identity.ClientCert; cc != nil {
		// CONNECT under mutual TLS only: rare enough for encoding/json.
		if b, err := json.Marshal(cc); err == nil {
			dst = append(dst, `,"clientCert":`...)
			dst = append(dst, b...)
		}
	}
	dst = append(dst, `},"requestId":`...)
	dst = jsonenc.AppendString(dst, rc.RequestID)
	dst = append(dst, `,"domainName":`...)
	dst = jsonenc.AppendString(dst, rc.DomainName)
	dst = append(dst, `,"connectionId":`...)
	dst = jsonenc.AppendString(dst, rc.ConnectionID)
	dst = append(dst, `,"apiId":`...)
	dst = jsonenc.AppendString(dst, rc.APIID)
	if len(rc.Authorizer) > 0 {
		// The authorizer's context: as varied as what authorizers answer,
		// left to encoding/json (its values came from decoded JSON).
		if b, err := json.Marshal(rc.Authorizer); err == nil {
			dst = append(dst, `,"authorizer":`...)
			dst = append(dst, b...)
		}
	}
	return append(dst, '}')
}
