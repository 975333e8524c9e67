package admission

import (
	"fmt"
	"testing"
	"time"
)

// TestClaimLimiterIsBounded: buckets back at their full burst are dropped,
// and past the bound the least recently used is, so the map never grows
// with the number of requesters; a drained bucket in use is kept.
func TestClaimLimiterIsBounded(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	l := newClaimLimiter(1, 2)
	if l.max != MaxRateLimitedRequesters {
		t.Fatalf("bound %d, documented %d", l.max, MaxRateLimitedRequesters)
	}
	l.max = 3
	for i, want := range []bool{true, true, false} {
		if got := l.allow("drained", t0); got != want {
			t.Fatalf("claim %d of a burst of 2: allowed %v", i, got)
		}
	}
	for i := range 10 {
		l.allow(fmt.Sprint("other-", i), t0)
		l.allow("drained", t0) // in use: never the least recently used
		if n := l.size(); n > l.max {
			t.Fatalf("%d buckets held, bound %d", n, l.max)
		}
	}
	if l.allow("drained", t0) {
		t.Error("the drained requester's bucket was dropped while in use")
	}
	// Ten seconds later every bucket is full again: dropped as the next
	// requester comes.
	l.allow("late", t0.Add(10*time.Second))
	if n := l.size(); n != 1 {
		t.Errorf("%d buckets held after all went full again; want only the last one's", n)
	}
}
