package clock

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestFakeFiresTimersInOrderOnlyWhenDue(t *testing.T) {
	start := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	f := NewFake(start)
	late := f.NewTimer(2 * time.Minute)
	early := f.NewTimer(time.Minute)

	f.Advance(30 * time.Second)
	select {
	case <-early.C():
		t.Fatal("timer fired before its deadline")
	default:
	}
	f.Advance(31 * time.Second)
	if got := <-early.C(); !got.Equal(start.Add(time.Minute)) {
		t.Fatalf("early fired with %v, want %v", got, start.Add(time.Minute))
	}
	select {
	case <-late.C():
		t.Fatal("late timer fired early")
	default:
	}
	if f.Pending() != 1 {
		t.Fatalf("Pending = %d, want 1", f.Pending())
	}
	if !late.Stop() {
		t.Fatal("Stop of a pending timer reported false")
	}
	f.Advance(time.Hour)
	select {
	case <-late.C():
		t.Fatal("stopped timer fired")
	default:
	}
}

func TestFakeZeroDurationFiresImmediately(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	select {
	case <-f.NewTimer(0).C():
	default:
		t.Fatal("a zero timer must fire at once")
	}
}

func TestSleepEndsOnAdvanceOrCancel(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { done <- Sleep(ctx, f, time.Hour) }()
	if err := f.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	f.Advance(time.Hour)
	if err := <-done; err != nil {
		t.Fatalf("Sleep = %v, want nil", err)
	}

	cctx, cancel := context.WithCancel(ctx)
	go func() { done <- Sleep(cctx, f, time.Hour) }()
	if err := f.WaitForTimers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Sleep after cancel = %v, want context.Canceled", err)
	}
}

func TestRealClockTimer(t *testing.T) {
	c := Real()
	tm := c.NewTimer(time.Millisecond)
	<-tm.C()
	if c.Now().IsZero() {
		t.Fatal("real clock returned zero time")
	}
}

func TestScaledClockRunsFaster(t *testing.T) {
	c := Scaled(3600) // an hour per second
	start := c.Now()
	tm := c.NewTimer(time.Hour)
	got := <-tm.C()
	if elapsed := got.Sub(start); elapsed < time.Hour {
		t.Fatalf("timer for 1h of scaled time fired after %v of scaled time", elapsed)
	}
	if c.NewTimer(time.Hour).Stop() != true {
		t.Fatal("Stop of a pending scaled timer reported false")
	}
}

func TestWithTimeoutEndsWhenTheClockPasses(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	ctx, cancel := WithTimeout(context.Background(), f, time.Minute)
	defer cancel()
	if err := f.WaitForTimers(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	f.Advance(59 * time.Second)
	if ctx.Err() != nil {
		t.Fatalf("ended before its time: %v", context.Cause(ctx))
	}
	f.Advance(time.Second)
	<-ctx.Done()
	if !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		t.Fatalf("cause = %v, want DeadlineExceeded", context.Cause(ctx))
	}
}
