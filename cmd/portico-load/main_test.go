package main

import (
	"strings"
	"testing"
)

// The secret key never reaches the summary's command line.
func TestRedactArgs(t *testing.T) {
	args := []string{"portico-load", "post", "--secret-key", "s3cret", "-secret-key=s3cret", "--access-key", "AKID", "--secret-key-file", "f"}
	got := strings.Join(redactArgs(args, "secret-key"), " ")
	if strings.Contains(got, "s3cret") || !strings.Contains(got, "--access-key AKID") || !strings.Contains(got, "--secret-key-file f") ||
		!strings.Contains(got, "-secret-key="+redacted) {
		t.Errorf("redacted to %q", got)
	}
	if args[3] != "s3cret" {
		t.Error("redactArgs changed its argument")
	}
}
