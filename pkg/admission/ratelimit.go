package admission

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults for the claims one namespace's direct CREATEs may make. A claim
// whose CREATE is then refused by a later admission step stands until its
// grace ends; the bound keeps a namespace from holding many objects that way.
const (
	DefaultDirectClaimsPerSecond = 10
	DefaultDirectClaimsBurst     = 100
)

// claimLimiter bounds the rate of claims per namespace for CREATEs that do
// not come from the orchestrator. The orchestrator's own are not limited:
// it releases the claim of a refused CREATE at once.
type claimLimiter struct {
	perSecond rate.Limit
	burst     int

	mu  sync.Mutex
	per map[string]*rate.Limiter
}

func newClaimLimiter(perSecond float64, burst int) *claimLimiter {
	return &claimLimiter{perSecond: rate.Limit(perSecond), burst: burst, per: map[string]*rate.Limiter{}}
}

// allow takes one claim from ns's budget at now (the Handler's clock, so
// that tests step time).
func (l *claimLimiter) allow(ns string, now time.Time) bool {
	l.mu.Lock()
	lim, ok := l.per[ns]
	if !ok {
		lim = rate.NewLimiter(l.perSecond, l.burst)
		l.per[ns] = lim
	}
	l.mu.Unlock()
	return lim.AllowN(now, 1)
}
