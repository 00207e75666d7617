package channels

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// The frames the gateway itself sends on channels are JSON objects with
// a "type" starting "portico.", so a client tells them from its
// backend's messages:
//
//	{"type":"portico.message","channel":"room:1","epoch":"…","offset":17,"data":{…}}
//	    a message of a channel with history ("data" is the body when it
//	    is JSON, else "text" holds a text body and "base64" a binary one)
//	{"type":"portico.presence","channel":"room:1","action":"join","connectionId":"…","principalId":"…","connectedAt":1740996000120}
//	{"type":"portico.recovery","channel":"room:1","recovered":true,"epoch":"…","offset":17,"replayed":3}
//	{"type":"portico.recovery","channel":"room:1","recovered":false,"reason":"…","epoch":"…","offset":17}
//	{"type":"portico.gap","channel":"room:1","dropped":4,"from":14,"to":17}
//	    messages this client missed because its send queue was full
//	    ("from" and "to" are offsets; "epoch" is there on history channels)

func appendString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

func head(typ, channel string) []byte {
	b := make([]byte, 0, 128)
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","channel":`...)
	return appendString(b, channel)
}

// envelope wraps a history channel's message with its position.
func envelope(channel, epoch string, offset uint64, data []byte, binary bool) []byte {
	b := head("portico.message", channel)
	b = append(b, `,"epoch":`...)
	b = appendString(b, epoch)
	b = append(b, `,"offset":`...)
	b = strconv.AppendUint(b, offset, 10)
	switch {
	case binary:
		b = append(b, `,"base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, data)
		b = append(b, '"')
	case json.Valid(data):
		b = append(b, `,"data":`...)
		b = append(b, data...)
	case utf8.Valid(data):
		b = append(b, `,"text":`...)
		b = appendString(b, string(data))
	default:
		b = append(b, `,"base64":"`...)
		b = base64.StdEncoding.AppendEncode(b, data)
		b = append(b, '"')
	}
	return append(b, '}')
}

// Member describes a subscriber, in presence events and member lists.
type Member struct {
	ConnectionID string `json:"connectionId"`
	PrincipalID  string `json:"principalId,omitempty"`
	ConnectedAt  int64  `json:"connectedAt"` // Unix milliseconds, as in events
}

func presenceFrame(channel, action string, m Member) []byte {
	b := head("portico.presence", channel)
	b = append(b, `,"action":"`...)
	b = append(b, action...)
	b = append(b, `","connectionId":`...)
	b = appendString(b, m.ConnectionID)
	if m.PrincipalID != "" {
		b = append(b, `,"principalId":`...)
		b = appendString(b, m.PrincipalID)
	}
	b = append(b, `,"connectedAt":`...)
	b = strconv.AppendInt(b, m.ConnectedAt, 10)
	return append(b, '}')
}

func recoveryFrame(channel string, ok bool, reason, epoch string, offset uint64, replayed int) []byte {
	b := head("portico.recovery", channel)
	if ok {
		b = append(b, `,"recovered":true`...)
	} else {
		b = append(b, `,"recovered":false,"reason":`...)
		b = appendString(b, reason)
	}
	b = append(b, `,"epoch":`...)
	b = appendString(b, epoch)
	b = append(b, `,"offset":`...)
	b = strconv.AppendUint(b, offset, 10)
	if ok {
		b = append(b, `,"replayed":`...)
		b = strconv.AppendInt(b, int64(replayed), 10)
	}
	return append(b, '}')
}

func gapFrame(channel, epoch string, from, to uint64) []byte {
	b := head("portico.gap", channel)
	b = append(b, `,"dropped":`...)
	b = strconv.AppendUint(b, to-from+1, 10)
	if epoch != "" {
		b = append(b, `,"epoch":`...)
		b = appendString(b, epoch)
	}
	b = append(b, `,"from":`...)
	b = strconv.AppendUint(b, from, 10)
	b = append(b, `,"to":`...)
	b = strconv.AppendUint(b, to, 10)
	return append(b, '}')
}
