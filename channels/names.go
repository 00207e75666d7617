package channels

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxNameBytes is the longest channel name.
const MaxNameBytes = 256

// MaxListed caps the channels one header or recover parameter may name.
const MaxListed = 32

// Sentinel errors callers branch on.
var (
	// ErrInvalidName: a channel name is empty, longer than MaxNameBytes or
	// has a character outside [A-Za-z0-9:_\-.@/]. Management answers 400.
	ErrInvalidName = errors.New("channels: invalid channel name")
	// ErrInvalidPosition: a recovery position is not <epoch>:<offset>.
	ErrInvalidPosition = errors.New("channels: invalid recovery position")
	// ErrClosed: the connection is closed, or was never opened through
	// this registry's Handler; nothing was subscribed.
	ErrClosed = errors.New("channels: connection closed")
)

// ValidName reports why name is not a channel name, or nil.
func ValidName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	if len(name) > MaxNameBytes {
		return fmt.Errorf("%w: %d bytes, over %d", ErrInvalidName, len(name), MaxNameBytes)
	}
	for i := 0; i < len(name); i++ {
		if !nameChar(name[i]) {
			return fmt.Errorf("%w: character %q at %d (allowed: A-Z a-z 0-9 : _ - . @ /)", ErrInvalidName, name[i], i)
		}
	}
	return nil
}

func nameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == ':' || c == '_' || c == '-' || c == '.' || c == '@' || c == '/'
}

// ParseList splits a header value such as "room:1, user:42" into channel
// names (commas, optional spaces; empty items are skipped). Every name is
// checked; at most MaxListed.
func ParseList(s string) ([]string, error) {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if err := ValidName(item); err != nil {
			return nil, err
		}
		if len(out) == MaxListed {
			return nil, fmt.Errorf("%w: more than %d channels in one list", ErrInvalidName, MaxListed)
		}
		out = append(out, item)
	}
	return out, nil
}

// Position is where a client stands in a channel's history: the epoch
// it saw and the offset of the last message it received (0: none yet).
type Position struct {
	Epoch  string
	Offset uint64
}

// String is the position's wire form, <epoch>:<offset>.
func (p Position) String() string { return p.Epoch + ":" + strconv.FormatUint(p.Offset, 10) }

// ParsePosition parses <epoch>:<offset>.
func ParsePosition(s string) (Position, error) {
	epoch, off, ok := strings.Cut(s, ":")
	if !ok || epoch == "" || len(epoch) > 64 || strings.ContainsAny(epoch, ":@, ") {
		return Position{}, fmt.Errorf("%w: %q (want <epoch>:<offset>)", ErrInvalidPosition, s)
	}
	n, err := strconv.ParseUint(off, 10, 64)
	if err != nil || off[0] == '+' || (len(off) > 1 && off[0] == '0') {
		return Position{}, fmt.Errorf("%w: offset %q", ErrInvalidPosition, off)
	}
	return Position{Epoch: epoch, Offset: n}, nil
}

// ParseRecover parses one recover value, <channel>@<epoch>:<offset>
// (room:1@Xk3hQ9aLm2c:17). Channel names may contain '@': the position
// is after the last one.
func ParseRecover(s string) (string, Position, error) {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return "", Position{}, fmt.Errorf("%w: %q (want <channel>@<epoch>:<offset>)", ErrInvalidPosition, s)
	}
	name := s[:i]
	if err := ValidName(name); err != nil {
		return "", Position{}, err
	}
	pos, err := ParsePosition(s[i+1:])
	if err != nil {
		return "", Position{}, err
	}
	return name, pos, nil
}

// match reports whether name matches pattern, where '*' stands for any
// run of characters (room:* matches room:1 and room:a/b).
func match(pattern, name string) bool {
	star := strings.IndexByte(pattern, '*')
	if star < 0 {
		return pattern == name
	}
	if !strings.HasPrefix(name, pattern[:star]) {
		return false
	}
	name, pattern = name[star:], pattern[star+1:]
	if pattern == "" {
		return true
	}
	for i := 0; i <= len(name); i++ {
		if match(pattern, name[i:]) {
			return true
		}
	}
	return false
}
