//go:build linux

package loadtest

import "golang.org/x/sys/unix"

// RaiseFileLimit sets the soft open-files limit (RLIMIT_NOFILE) to the
// hard limit and returns it. A process may hold at most that many
// sockets; raising the hard limit itself needs root (see README.md).
func RaiseFileLimit() (uint64, error) {
	var r unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &r); err != nil {
			return 0, err
		}
	}
	return r.Cur, nil
}

// FileLimit returns the current soft open-files limit.
func FileLimit() (uint64, error) {
	var r unix.Rlimit
	err := unix.Getrlimit(unix.RLIMIT_NOFILE, &r)
	return r.Cur, err
}
