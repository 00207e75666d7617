//go:build !linux

package connections

const reusePortSupported = false

func setReusePort(uintptr) error { return nil }

func setDeferAccept(uintptr) error { return nil }
