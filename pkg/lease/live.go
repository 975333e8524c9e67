package lease

import (
	"time"

	"k8s.io/client-go/rest"
)

// LiveConfig is a copy of cfg for a Lock's live client, with its requests
// capped at LiveTimeout(d) for the lock's duration d.
func LiveConfig(cfg *rest.Config, d time.Duration) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Timeout = LiveTimeout(d)
	return cfg
}

// LiveTimeout caps a live request at a quarter of the lock's duration (at
// least 1s): a write or a deciding read that hangs must fail while the lock
// it was made under still holds, not land after it lapsed. client-go's
// leader election caps its client likewise (max(1s, RenewDeadline/2)).
func LiveTimeout(d time.Duration) time.Duration {
	if d <= 0 {
		d = DefaultDuration
	}
	return max(time.Second, d/4)
}
