package routing

import "time"

// Options are the thresholds of the checks. Zero values take the defaults.
type Options struct {
	// ConsecutiveFailureThreshold failed requests in a row (same signal and
	// target) block the next for ConsecutiveFailureCooldown. Default 3, 1h.
	ConsecutiveFailureThreshold int
	ConsecutiveFailureCooldown  time.Duration
	// RecentlyRemediatedCooldown blocks a workflow on a target it completed
	// on less than this long ago. Default 5m.
	RecentlyRemediatedCooldown time.Duration
	// Backoff after n failures is BackoffBase * 2^(n-1), at most BackoffMax,
	// then spread by +-BackoffJitter. Defaults 1m, 10m, 0.1.
	BackoffBase   time.Duration
	BackoffMax    time.Duration
	BackoffJitter float64
}

// Defaults returns o with every unset field at its default.
func (o Options) Defaults() Options {
	if o.ConsecutiveFailureThreshold <= 0 {
		o.ConsecutiveFailureThreshold = 3
	}
	if o.ConsecutiveFailureCooldown <= 0 {
		o.ConsecutiveFailureCooldown = time.Hour
	}
	if o.RecentlyRemediatedCooldown <= 0 {
		o.RecentlyRemediatedCooldown = 5 * time.Minute
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = time.Minute
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 10 * time.Minute
	}
	if o.BackoffJitter <= 0 || o.BackoffJitter >= 1 {
		o.BackoffJitter = 0.1
	}
	return o
}
