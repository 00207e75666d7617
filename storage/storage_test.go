package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestRenewalContext(t *testing.T) {
	// The caller's deadline does not end it; its own budget does.
	parent, cancelParent := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancelParent()
	rctx, cancel := RenewalContext(parent, time.Hour)
	<-parent.Done()
	if err := rctx.Err(); err != nil {
		t.Fatalf("after the caller's deadline: %v", err)
	}
	if dl, ok := rctx.Deadline(); !ok || time.Until(dl) < 50*time.Minute {
		t.Errorf("deadline %v, %v: want about an hour", dl, ok)
	}
	cancel()
	if rctx.Err() == nil {
		t.Error("cancel did not end it")
	}
	// The caller's cancellation ends it.
	parent2, cancelParent2 := context.WithCancel(context.Background())
	rctx2, cancel2 := RenewalContext(parent2, time.Hour)
	defer cancel2()
	cancelParent2()
	<-rctx2.Done()
}

func TestLeaseSchedule(t *testing.T) {
	s := &LeaseSchedule{Every: time.Minute, Budget: time.Second}
	t0 := time.Now()
	calls := 0
	ok := func(context.Context) error { calls++; return nil }
	fail := func(context.Context) error { calls++; return context.DeadlineExceeded }

	s.Registered("n", t0)
	if err := s.Renew(context.Background(), "n", t0.Add(30*time.Second), ok); err != nil || calls != 0 {
		t.Fatalf("renewed before due: %v, %d calls", err, calls)
	}
	if err := s.Renew(context.Background(), "n", t0.Add(time.Minute), fail); !errors.Is(err, ErrLeaseRenewal) || !errors.Is(err, context.DeadlineExceeded) || calls != 1 {
		t.Fatalf("failed renewal: %v, %d calls", err, calls)
	}
	// A failed renewal is due again at once.
	if err := s.Renew(context.Background(), "n", t0.Add(time.Minute+time.Second), ok); err != nil || calls != 2 {
		t.Fatalf("retry: %v, %d calls", err, calls)
	}
	if err := s.Renew(context.Background(), "n", t0.Add(time.Minute+2*time.Second), ok); err != nil || calls != 2 {
		t.Fatalf("renewed again right after a success: %v, %d calls", err, calls)
	}
	// A node never seen is due.
	if err := s.Renew(context.Background(), "other", t0, ok); err != nil || calls != 3 {
		t.Fatalf("unknown node: %v, %d calls", err, calls)
	}
}
