package lease

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/pkg/target"
)

// ErrNotHeld is returned by Renew when the token no longer holds its lock.
var ErrNotHeld = errors.New("lock not held")

// Client is what the lock needs of the API server. It must read live: a
// cache could show a Lease as free a moment after another replica took it.
type Client interface {
	Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error
	List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error
	Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error
	Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error
	Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error
}

// Options configure a Lock. Zero values take the defaults.
type Options struct {
	// Namespace holds the Leases: the install namespace, the only one the
	// components may write Leases in.
	Namespace string
	// Identity names this process in every token, usually the pod name.
	Identity string
	// Duration is how long a lock lasts without Renew. Default 30s; rounded
	// up to whole seconds, the Lease API's unit.
	Duration time.Duration
	// ClaimGrace is how long a claim stands for a WFE that cannot be found:
	// the window between admission and storage of a CREATE. Default 30s,
	// the API server's maximum webhook timeout.
	ClaimGrace time.Duration
	// Clock is injectable so tests step time instead of sleeping.
	Clock clock.PassiveClock
	// Cache, optional, reads Leases from an informer for Peek: a first
	// guess that a compare-and-swap then proves or refutes. Default: none
	// (Peek reads live).
	Cache client.Reader
}

const (
	DefaultDuration   = 30 * time.Second
	DefaultClaimGrace = 30 * time.Second
	// releaseTimeout bounds a release made after the caller's context ended.
	releaseTimeout = 5 * time.Second
	// maxAttempts bounds the re-read-and-retry loops after a lost CAS.
	maxAttempts = 3
)

// Lock takes and releases per-target locks and claims.
type Lock struct {
	client     Client
	namespace  string
	identity   string
	duration   time.Duration
	claimGrace time.Duration
	clock      clock.PassiveClock
	cache      client.Reader

	mu sync.Mutex
	// orphans maps a Lease name to the token of an acquisition whose write
	// failed without a clear answer: if that write was applied, the phantom
	// lock is ours to take over.
	orphans map[string]string
	// seen maps a claimed Lease's name to when this Lock first saw its
	// version (observed.go).
	seen map[string]observation
}

// New returns a Lock. Namespace and Identity are required.
func New(c Client, opts Options) (*Lock, error) {
	if opts.Namespace == "" || opts.Identity == "" {
		return nil, errors.New("lease: namespace and identity are required")
	}
	if opts.Duration <= 0 {
		opts.Duration = DefaultDuration
	}
	if opts.ClaimGrace <= 0 {
		opts.ClaimGrace = DefaultClaimGrace
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	return &Lock{
		client:     c,
		namespace:  opts.Namespace,
		identity:   opts.Identity,
		duration:   opts.Duration,
		claimGrace: opts.ClaimGrace,
		clock:      opts.Clock,
		cache:      opts.Cache,
		orphans:    map[string]string{},
		seen:       map[string]observation{},
	}, nil
}

// Namespace is where the Leases live.
func (l *Lock) Namespace() string { return l.namespace }

// ClaimGrace is how long a claim stands for a WFE that cannot be found.
func (l *Lock) ClaimGrace() time.Duration { return l.claimGrace }

// Duration is how long a lock lasts without Renew.
func (l *Lock) Duration() time.Duration { return l.duration }

// Acquire tries to lock key. It returns acquired=false, with no error, when
// someone else holds the lock or a claim; an API error is returned as an
// error and never taken to mean the target is free.
func (l *Lock) Acquire(ctx context.Context, key target.Key) (Token, bool, error) {
	tok := Token{Key: key, ID: newID(l.identity), written: &written{}}
	for range maxAttempts {
		now := l.clock.Now()
		created := l.newLease(key, tok.ID, now)
		err := l.client.Create(ctx, created)
		switch {
		case err == nil:
			tok.wrote(created)
			return l.acquired(tok, now), true, nil
		case !apierrors.IsAlreadyExists(err):
			if l.applied(ctx, tok) {
				return l.acquired(tok, now), true, nil
			}
			return l.acquireFailed(key, tok, fmt.Errorf("creating lease for %s: %w", key, err), "create")
		}

		st, err := l.Inspect(ctx, key)
		if err != nil {
			acquisitions.WithLabelValues("error").Inc()
			return Token{}, false, err
		}
		switch {
		case st.Phase == Free:
			continue // released between our Create and Get: try again
		case st.Phase == Claimed, !st.Expired(now) && !l.isOrphan(key, st.Holder):
			acquisitions.WithLabelValues("contended").Inc()
			return Token{}, false, nil
		}

		// The lock expired, or it is one of ours whose acquisition we could
		// not confirm: take it over against the version we read, so of
		// several contenders exactly one wins.
		got, ok, err := l.takeOver(ctx, tok, st, now)
		if errors.Is(err, errGone) {
			continue // released since we read it: CREATE again
		}
		return got, ok, err
	}
	acquisitions.WithLabelValues("contended").Inc()
	return Token{}, false, nil
}

// Replace takes the target from st, a claim the caller found stale (its
// WFE ended or is gone), in one compare-and-swap rather than a release and
// an Acquire: of several callers exactly one wins. A Lease that changed
// since st was read is left alone, and acquired is false. One deleted
// since (its claim released by someone else meanwhile) is Acquired at
// once: the caller would otherwise wait for the delete's event to do so.
func (l *Lock) Replace(ctx context.Context, st State) (Token, bool, error) {
	if st.Phase != Claimed || st.lease == nil {
		return Token{}, false, nil
	}
	tok, ok, err := l.takeOver(ctx, Token{Key: st.Key, ID: newID(l.identity), written: &written{}}, st, l.clock.Now())
	if errors.Is(err, errGone) {
		return l.Acquire(ctx, st.Key)
	}
	return tok, ok, err
}

// errGone is takeOver's report of a Lease deleted since it was read.
var errGone = errors.New("lease deleted since read")

// takeOver writes tok's lock over the version of the Lease st observed;
// errGone if that Lease no longer exists.
func (l *Lock) takeOver(ctx context.Context, tok Token, st State, now time.Time) (Token, bool, error) {
	lease := st.lease.DeepCopy()
	delete(lease.Annotations, ClaimUIDAnnotation) // a lock, no longer a claim
	delete(lease.Annotations, ClaimTokenAnnotation)
	lease.Spec.HolderIdentity = ptr.To(tok.ID)
	lease.Spec.LeaseDurationSeconds = ptr.To(l.durationSeconds())
	lease.Spec.AcquireTime = &metav1.MicroTime{Time: now}
	lease.Spec.RenewTime = &metav1.MicroTime{Time: now}
	lease.Spec.LeaseTransitions = ptr.To(ptr.Deref(lease.Spec.LeaseTransitions, 0) + 1)
	err := l.client.Update(ctx, lease)
	switch {
	case err == nil:
		takeovers.Inc()
		tok.wrote(lease)
		return l.acquired(tok, now), true, nil
	case apierrors.IsNotFound(err):
		return Token{}, false, errGone
	case apierrors.IsConflict(err):
		acquisitions.WithLabelValues("contended").Inc()
		return Token{}, false, nil
	case l.applied(ctx, tok):
		takeovers.Inc()
		return l.acquired(tok, now), true, nil
	default:
		return l.acquireFailed(st.Key, tok, fmt.Errorf("taking over lease of %s: %w", st.Key, err), "update")
	}
}

func (l *Lock) acquired(tok Token, now time.Time) Token {
	tok.acquired = now
	acquisitions.WithLabelValues("acquired").Inc()
	return tok
}

// acquireFailed reports a write whose outcome is unknown: it may have been
// applied with its response lost. The token is remembered, so that the next
// Acquire of the key takes over that phantom lock at once instead of waiting
// for it to expire.
func (l *Lock) acquireFailed(key target.Key, tok Token, err error, op string) (Token, bool, error) {
	l.mu.Lock()
	l.orphans[key.LeaseName()] = tok.ID
	l.mu.Unlock()
	apiErrors.WithLabelValues(op).Inc()
	acquisitions.WithLabelValues("error").Inc()
	return Token{}, false, err
}

// Orphaned reports a lock st observed that this Lock wrote but could not
// confirm (a write whose answer was lost): Acquire takes it over at once,
// so a caller must not wait on it as on another holder's lock.
func (l *Lock) Orphaned(st State) bool {
	return st.Phase == Locked && l.isOrphan(st.Key, st.Holder)
}

func (l *Lock) isOrphan(key target.Key, holder string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return holder != "" && l.orphans[key.LeaseName()] == holder
}

// applied re-reads the Lease after a write that failed without a clear
// answer (a timeout, a lost connection): the write may have been applied.
// It reports whether the Lease now holds our write, identified by tok's ID.
func (l *Lock) applied(ctx context.Context, tok Token) bool {
	st, err := l.Inspect(ctx, tok.Key)
	if err != nil || st.Phase != Locked || st.Holder != tok.ID {
		return false
	}
	tok.wrote(st.lease)
	return true
}

func (l *Lock) newLease(key target.Key, holder string, now time.Time) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name:        key.LeaseName(),
			Namespace:   l.namespace,
			Labels:      map[string]string{ManagedByLabel: ManagedBy, TargetHashLabel: key.Hash()},
			Annotations: map[string]string{TargetAnnotation: key.String()},
		},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To(holder),
			LeaseDurationSeconds: ptr.To(l.durationSeconds()),
			AcquireTime:          &metav1.MicroTime{Time: now},
			RenewTime:            &metav1.MicroTime{Time: now},
		},
	}
}

func (l *Lock) durationSeconds() int32 { return seconds(l.duration) }

// seconds rounds d up to whole seconds, the Lease API's unit, and at least
// one: rounding down would shorten a lock or a claim's grace.
func seconds(d time.Duration) int32 {
	return int32(max(1, min(math.Ceil(d.Seconds()), math.MaxInt32)))
}
