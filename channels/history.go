package channels

import (
	"crypto/rand"
	"encoding/base64"
	"time"

	"github.com/portico-gateway/portico/connections"
)

// HistoryConfig is a channel's retention. Both zero: no history.
type HistoryConfig struct {
	// Size keeps the last Size messages. 0: no count limit (TTL alone).
	Size int
	// TTL keeps messages this long. 0: no age limit (Size alone).
	TTL time.Duration
}

// Enabled reports whether the channel keeps history.
func (h HistoryConfig) Enabled() bool { return h.Size > 0 || h.TTL > 0 }

// Entry is one retained message: its offset, when it was published and
// the frame as subscribers received it (the portico.message envelope).
type Entry struct {
	Offset uint64
	At     time.Time
	Frame  *connections.Prepared
}

// History is one channel's retained messages, with the channel's epoch
// and offsets. The registry calls it under the channel's lock, so an
// implementation needs no lock of its own for one channel. The memory
// implementation is NewMemoryHistory; a shared one (Redis) will let
// another node recover a client.
type History interface {
	// Epoch names this history: a client's offsets are meaningful only
	// with the epoch they came with. A new history has a new epoch.
	Epoch() string
	// Last is the offset of the last message appended (0: none yet).
	Last() uint64
	// Append retains e; e.Offset is Last()+1.
	Append(e Entry)
	// Since returns the retained entries after offset, oldest first, and
	// whether they cover every message after it (false when some have
	// been evicted, or offset is ahead of Last).
	Since(offset uint64, now time.Time) ([]Entry, bool)
	// Retained reports whether any message is still retained at now.
	Retained(now time.Time) bool
}

// NewHistory makes the History of a channel created with c.
type NewHistory func(c HistoryConfig) History

// memoryHistory is a ring of the last Size entries (or a growing slice
// for TTL alone), evicting by age on every call.
type memoryHistory struct {
	cfg     HistoryConfig
	epoch   string
	last    uint64
	entries []Entry // oldest first
}

// NewMemoryHistory keeps a channel's history in this process.
func NewMemoryHistory(c HistoryConfig) History {
	return &memoryHistory{cfg: c, epoch: newEpoch()}
}

func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (h *memoryHistory) Epoch() string { return h.epoch }
func (h *memoryHistory) Last() uint64  { return h.last }

func (h *memoryHistory) Append(e Entry) {
	h.last = e.Offset
	h.evict(e.At)
	if h.cfg.Size > 0 && len(h.entries) >= h.cfg.Size {
		n := copy(h.entries, h.entries[len(h.entries)-h.cfg.Size+1:])
		clear(h.entries[n:])
		h.entries = h.entries[:n]
	}
	h.entries = append(h.entries, e)
}

func (h *memoryHistory) evict(now time.Time) {
	if h.cfg.TTL <= 0 {
		return
	}
	i := 0
	for i < len(h.entries) && now.Sub(h.entries[i].At) > h.cfg.TTL {
		i++
	}
	if i > 0 {
		n := copy(h.entries, h.entries[i:])
		clear(h.entries[n:])
		h.entries = h.entries[:n]
	}
}

func (h *memoryHistory) Since(offset uint64, now time.Time) ([]Entry, bool) {
	h.evict(now)
	if offset > h.last {
		return nil, false
	}
	if offset == h.last {
		return nil, true
	}
	if len(h.entries) == 0 || h.entries[0].Offset > offset+1 {
		return nil, false
	}
	i := int(offset + 1 - h.entries[0].Offset)
	return append([]Entry(nil), h.entries[i:]...), true
}

func (h *memoryHistory) Retained(now time.Time) bool {
	h.evict(now)
	return len(h.entries) > 0
}
