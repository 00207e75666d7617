package storage

import (
	"context"
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
