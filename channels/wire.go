package channels

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Message kinds on the bus.
const (
	// KindPublish is a published message; it has an offset (Seq).
	KindPublish byte = 1
	// KindPresence is a portico.presence frame; it has no offset.
	KindPresence byte = 2
)

// BusMessage is what travels between nodes for one channel: a publish or
// a presence event. Seq and Epoch are assigned by the bus when the
// message is published (a publish's offset, from one counter per channel
// in Redis; 0 and "" for presence and for channels without history's
// epoch).
type BusMessage struct {
	Kind  byte
	Seq   uint64
	Epoch string
	// From is the node that published it and ID the publish on that node
	// (the publishing node waits for its own delivery to count it).
	From string
	ID   uint64
	// Exclude is a connection id left out ("" for none).
	Exclude string
	Binary  bool
	// Data is the published body, or the presence frame.
	Data []byte
}

// The wire form of a bus message is what a Lua script can prefix without
// decoding anything: the bus's numbering in decimal text, then a binary
// head, then the body as it was published.
//
//	seq      decimal digits, then ' '   (0 for presence)
//	epoch    bytes without ' ', then ' ' (empty without history)
//	version  byte    busVersion
//	kind     byte    KindPublish or KindPresence
//	from     uvarint length, then the bytes
//	id       uvarint
//	exclude  uvarint length, then the bytes
//	flags    byte    bit 0: binary
//	data     the rest
//
// A node that reads a version it does not know drops the message and
// logs it. Bump busVersion on any change to the layout.
const busVersion = 1

// ErrMalformed reports a bus message that cannot be decoded.
var ErrMalformed = errors.New("channels: malformed bus message")

// AppendHead appends the binary head of m (everything after the epoch,
// before the data) to b.
func AppendHead(b []byte, m *BusMessage) []byte {
	b = append(b, busVersion, m.Kind)
	b = binary.AppendUvarint(b, uint64(len(m.From)))
	b = append(b, m.From...)
	b = binary.AppendUvarint(b, m.ID)
	b = binary.AppendUvarint(b, uint64(len(m.Exclude)))
	b = append(b, m.Exclude...)
	var flags byte
	if m.Binary {
		flags |= 1
	}
	return append(b, flags)
}

// AppendBusMessage appends m's whole wire form to b (the bus itself
// writes the numbering of a publish in Redis; this serves presence
// events and tests).
func AppendBusMessage(b []byte, m *BusMessage) []byte {
	b = strconv.AppendUint(b, m.Seq, 10)
	b = append(b, ' ')
	b = append(b, m.Epoch...)
	b = append(b, ' ')
	b = AppendHead(b, m)
	return append(b, m.Data...)
}

// DecodeBusMessage parses b. Data is a copy.
func DecodeBusMessage(b []byte) (BusMessage, error) {
	var m BusMessage
	i := 0
	for i < len(b) && b[i] != ' ' {
		i++
	}
	if i == 0 || i == len(b) || i > 20 {
		return m, fmt.Errorf("%w: no offset", ErrMalformed)
	}
	seq, err := strconv.ParseUint(string(b[:i]), 10, 64)
	if err != nil || (i > 1 && b[0] == '0') {
		return m, fmt.Errorf("%w: offset %q", ErrMalformed, b[:i])
	}
	b = b[i+1:]
	i = 0
	for i < len(b) && b[i] != ' ' {
		i++
	}
	if i == len(b) || i > 64 {
		return m, fmt.Errorf("%w: no epoch", ErrMalformed)
	}
	m.Seq, m.Epoch = seq, string(b[:i])
	b = b[i+1:]
	if len(b) < 2 {
		return m, fmt.Errorf("%w: short head", ErrMalformed)
	}
	if b[0] != busVersion {
		return m, fmt.Errorf("%w: version %d, this node speaks %d", ErrMalformed, b[0], busVersion)
	}
	m.Kind = b[1]
	if m.Kind != KindPublish && m.Kind != KindPresence {
		return m, fmt.Errorf("%w: kind %d", ErrMalformed, m.Kind)
	}
	b = b[2:]
	str := func(what string) string {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			err = fmt.Errorf("%w: %s", ErrMalformed, what)
			return ""
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s
	}
	m.From = str("from")
	if err != nil {
		return BusMessage{}, err
	}
	id, k := binary.Uvarint(b)
	if k <= 0 {
		return BusMessage{}, fmt.Errorf("%w: id", ErrMalformed)
	}
	m.ID, b = id, b[k:]
	m.Exclude = str("exclude")
	if err != nil {
		return BusMessage{}, err
	}
	if len(b) == 0 || b[0] > 1 {
		return BusMessage{}, fmt.Errorf("%w: flags", ErrMalformed)
	}
	m.Binary = b[0] == 1
	m.Data = append([]byte{}, b[1:]...)
	return m, nil
}
