package routing

import "time"

// The checks' defaults, one place for Options.Defaults and the command's
// flags. Each only delays a request; none can let two WFEs run on a target
// (the lock does that), so a wrong value costs time, not safety.
const (
	// DefaultConsecutiveFailureThreshold failures in a row block the next:
	// enough to ride out one flaky run, few enough to stop a loop early.
	DefaultConsecutiveFailureThreshold = 3
	// DefaultConsecutiveFailureCooldown is long enough for a human to look.
	DefaultConsecutiveFailureCooldown = time.Hour
	// DefaultRecentlyRemediatedCooldown lets a completed fix settle before
	// the same workflow runs on the target again.
	DefaultRecentlyRemediatedCooldown = 5 * time.Minute
	// DefaultBackoffBase and DefaultBackoffMax bound the wait after a
	// failure: a minute, doubling, at most ten.
	DefaultBackoffBase = time.Minute
	DefaultBackoffMax  = 10 * time.Minute
	// DefaultBackoffJitter spreads the retries of many requests by +-10%.
	DefaultBackoffJitter = 0.1
)

// Options are the thresholds of the checks. Zero values take the defaults.
type Options struct {
	// ConsecutiveFailureThreshold failed requests in a row (same signal and
	// target) block the next for ConsecutiveFailureCooldown.
	ConsecutiveFailureThreshold int
	ConsecutiveFailureCooldown  time.Duration
	// RecentlyRemediatedCooldown blocks a workflow on a target it completed
	// on less than this long ago.
	RecentlyRemediatedCooldown time.Duration
	// Backoff after n failures is BackoffBase * 2^(n-1), at most BackoffMax,
	// then spread by +-BackoffJitter.
	BackoffBase   time.Duration
	BackoffMax    time.Duration
	BackoffJitter float64
}

// Defaults returns o with every unset field at its default.
func (o Options) Defaults() Options {
	if o.ConsecutiveFailureThreshold <= 0 {
		o.ConsecutiveFailureThreshold = DefaultConsecutiveFailureThreshold
	}
	if o.ConsecutiveFailureCooldown <= 0 {
		o.ConsecutiveFailureCooldown = DefaultConsecutiveFailureCooldown
	}
	if o.RecentlyRemediatedCooldown <= 0 {
		o.RecentlyRemediatedCooldown = DefaultRecentlyRemediatedCooldown
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = DefaultBackoffBase
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	if o.BackoffJitter <= 0 || o.BackoffJitter >= 1 {
		o.BackoffJitter = DefaultBackoffJitter
	}
	return o
}
