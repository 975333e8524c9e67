package admission

import (
	"container/list"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults for the claims one requester's direct CREATEs may make. A claim
// whose CREATE is then refused by a later admission step stands until its
// grace ends; the bound keeps a requester from holding many objects that way.
const (
	DefaultDirectClaimsPerSecond = 10
	DefaultDirectClaimsBurst     = 100
)

// MaxRateLimitedRequesters bounds the requesters whose budgets the webhook
// remembers: a bucket is about 200 bytes, so at most about 2 MiB. A bucket
// back at its full burst is dropped (a new one is the same); past the bound
// the least recently used one is, which then starts again from a full
// burst: only an attacker holding that many identities the API server
// authenticates could use this, and each identity still gets one burst.
const MaxRateLimitedRequesters = 10000

// claimLimiter bounds the rate of claims per requester for CREATEs that do
// not come from the orchestrator or a trusted ServiceAccount (theirs are
// not limited: the orchestrator releases the claim of a refused CREATE at
// once). A requester is its username as the API server authenticated it,
// never what the request body says (its namespace): one requester's flood
// never drains another's budget, whatever namespace either names.
type claimLimiter struct {
	perSecond rate.Limit
	burst     int
	max       int

	mu  sync.Mutex
	lru *list.List // of *bucket, most recently used first
	per map[string]*list.Element
}

type bucket struct {
	requester string
	lim       *rate.Limiter
}

func newClaimLimiter(perSecond float64, burst int) *claimLimiter {
	return &claimLimiter{perSecond: rate.Limit(perSecond), burst: burst, max: MaxRateLimitedRequesters,
		lru: list.New(), per: map[string]*list.Element{}}
}

// allow takes one claim from requester's budget at now (the Handler's
// clock, so that tests step time).
func (l *claimLimiter) allow(requester string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.per[requester]
	if ok {
		l.lru.MoveToFront(e)
	} else {
		e = l.lru.PushFront(&bucket{requester: requester, lim: rate.NewLimiter(l.perSecond, l.burst)})
		l.per[requester] = e
	}
	b := e.Value.(*bucket)
	allowed := b.lim.AllowN(now, 1)
	l.evict(now)
	return allowed
}

// evict drops the least recently used buckets while they are full again,
// and while there are more than max.
func (l *claimLimiter) evict(now time.Time) {
	for back := l.lru.Back(); back != nil && back != l.lru.Front(); back = l.lru.Back() {
		b := back.Value.(*bucket)
		if l.lru.Len() <= l.max && b.lim.TokensAt(now) < float64(l.burst) {
			return
		}
		l.lru.Remove(back)
		delete(l.per, b.requester)
	}
}

// size is how many requesters' buckets are held.
func (l *claimLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}
