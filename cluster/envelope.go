package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// envelope is what travels on a node's channel: a request (Op set) or a
// reply (Result set).
type envelope struct {
	Seq    uint64
	From   string
	Op     *Op
	Result *Result
}

// The wire form of an envelope is binary, not JSON: on the owner node the
// JSON decoder took 8% of the time spent on a forwarded post.
//
//	version  byte    envelopeVersion
//	kind     byte    kindRequest or kindReply
//	seq      uvarint
//	from     string  (uvarint length, then the bytes)
//	request: op byte (post 1, get 2, delete 3, subscribe 4,
//	         unsubscribe 5), stage string, id string, data string,
//	         channel string, recover string (version 2 on)
//	reply:   status uvarint, errType string, message string,
//	         body flag byte (0: nil, 1: present), body string when present
//
// A node that reads a version it does not know drops the message and logs
// it, so mixing releases with different versions fails loudly (the caller
// gets a timeout), not by misreading bytes. Bump envelopeVersion on any
// change to the layout.
const envelopeVersion = 2

const (
	kindRequest = 1
	kindReply   = 2
)

var opCodes = map[string]byte{OpPost: 1, OpGet: 2, OpDelete: 3, OpSubscribe: 4, OpUnsubscribe: 5}
var opNames = [...]string{1: OpPost, 2: OpGet, 3: OpDelete, 4: OpSubscribe, 5: OpUnsubscribe}

// errMalformed reports an envelope that cannot be decoded.
var errMalformed = errors.New("relay: malformed envelope")

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendEnvelope appends e's wire form to b.
func appendEnvelope(b []byte, e *envelope) []byte {
	b = append(b, envelopeVersion)
	if e.Op != nil {
		b = append(b, kindRequest)
	} else {
		b = append(b, kindReply)
	}
	b = binary.AppendUvarint(b, e.Seq)
	b = appendString(b, e.From)
	if o := e.Op; o != nil {
		b = append(b, opCodes[o.Kind])
		b = appendString(b, o.Stage)
		b = appendString(b, o.ID)
		b = appendString(b, string(o.Data))
		b = appendString(b, o.Channel)
		return appendString(b, o.Recover)
	}
	r := e.Result
	if r == nil {
		r = &Result{}
	}
	b = binary.AppendUvarint(b, uint64(r.Status))
	b = appendString(b, r.ErrType)
	b = appendString(b, r.Message)
	if r.Body == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	return appendString(b, string(r.Body))
}

// decoder reads an envelope's fields in order; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", errMalformed, what)
	}
}

func (d *decoder) byte(what string) byte {
	if d.err != nil || len(d.b) == 0 {
		d.fail(what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(what string) []byte {
	n := d.uvarint(what)
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

func (d *decoder) string(what string) string { return string(d.bytes(what)) }

// decodeEnvelope parses b. The envelope's byte slices (Data, Body) are
// copies: b may be reused.
func decodeEnvelope(b []byte) (envelope, error) {
	d := decoder{b: b}
	var e envelope
	if v := d.byte("version"); d.err == nil && v != envelopeVersion {
		return e, fmt.Errorf("%w: version %d, this node speaks %d", errMalformed, v, envelopeVersion)
	}
	kind := d.byte("kind")
	e.Seq = d.uvarint("seq")
	e.From = d.string("from")
	switch {
	case d.err != nil:
	case kind == kindRequest:
		code := d.byte("op")
		if d.err == nil && (int(code) >= len(opNames) || opNames[code] == "") {
			d.fail(fmt.Sprintf("op code %d", code))
		}
		o := &Op{Stage: d.string("stage"), ID: d.string("id")}
		if data := d.bytes("data"); len(data) > 0 {
			o.Data = append([]byte(nil), data...)
		}
		o.Channel = d.string("channel")
		o.Recover = d.string("recover")
		if d.err == nil {
			o.Kind = opNames[code]
		}
		e.Op = o
	case kind == kindReply:
		r := &Result{}
		status := d.uvarint("status")
		if status > 999 {
			d.fail(fmt.Sprintf("status %d", status))
		}
		r.Status = int(status)
		r.ErrType = d.string("errType")
		r.Message = d.string("message")
		switch flag := d.byte("body flag"); flag {
		case 0:
		case 1:
			r.Body = append([]byte{}, d.bytes("body")...)
		default:
			d.fail(fmt.Sprintf("body flag %d", flag))
		}
		e.Result = r
	default:
		d.fail(fmt.Sprintf("kind %d", kind))
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail(fmt.Sprintf("%d trailing bytes", len(d.b)))
	}
	if d.err != nil {
		return envelope{}, d.err
	}
	return e, nil
}
