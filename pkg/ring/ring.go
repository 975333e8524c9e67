package ring

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

const (
	// Label marks member Leases; its value is LabelValue.
	Label      = "targetlock.io/ring"
	LabelValue = "orchestrator"
	// LeasePrefix starts every member Lease's name.
	LeasePrefix = "targetlock-member-"
	// DefaultDuration is how long a membership lasts without renewal.
	DefaultDuration = 15 * time.Second
)

// Options configure a Ring.
type Options struct {
	// Namespace holds the member Leases (the install namespace).
	Namespace string
	// Identity is this replica's unique name (the pod name).
	Identity string
	// Duration a membership lasts without renewal; renewed every Duration/3.
	// Default DefaultDuration; whole seconds (a Lease counts in seconds).
	Duration time.Duration
	// Clock tells time and runs timers; default the real clock.
	Clock clock.WithTicker
	// Owner, if set, owns the member Lease (the replica's Pod): the garbage
	// collector deletes the Lease with its pod when the replica could not
	// leave (killed, or its RBAC removed first at uninstall).
	Owner *metav1.OwnerReference
}

// Client writes the member Lease: a live client, not a cache.
type Client interface {
	Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error
	Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error
	Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error
	Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error
}

// Ring is this replica's membership and its view of the others'. Start it
// (a manager.Runnable) to join; until then, and after it stops, it owns
// nothing.
type Ring struct {
	opts   Options
	client Client      // writes of our own Lease
	cache  cache.Cache // members, as the manager's informer sees them
	log    logr.Logger

	view  atomic.Pointer[View]
	kick  chan struct{}
	mu    sync.Mutex
	subs  []func(before, after View)
	own   *coordinationv1.Lease // as last written; nil: read it first
	alive atomic.Int64          // UnixNano until which our last renewal holds; 0: not live
}

// New returns a Ring for one replica. c writes its member Lease (a live
// client); ca must cache Leases in opts.Namespace.
func New(c Client, ca cache.Cache, opts Options) (*Ring, error) {
	if opts.Namespace == "" || opts.Identity == "" {
		return nil, errors.New("ring: namespace and identity are required")
	}
	if opts.Duration <= 0 {
		opts.Duration = DefaultDuration
	}
	if opts.Duration < time.Second || opts.Duration%time.Second != 0 {
		return nil, fmt.Errorf("ring: duration %s is not a whole number of seconds", opts.Duration)
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	r := &Ring{opts: opts, client: c, cache: ca, kick: make(chan struct{}, 1),
		log: logf.Log.WithName("ring").WithValues("identity", opts.Identity)}
	empty := NewView(opts.Identity)
	r.view.Store(&empty)
	return r, nil
}

// LeaseName is the name of identity's member Lease: the identity itself
// when it makes a valid name, else its hash.
func LeaseName(identity string) string {
	if name := LeasePrefix + identity; len(validation.IsDNS1123Subdomain(name)) == 0 {
		return name
	}
	sum := sha256.Sum256([]byte(identity))
	return LeasePrefix + hex.EncodeToString(sum[:10])
}

// View is the membership as this replica sees it now.
func (r *Ring) View() View { return *r.view.Load() }

// Owns reports whether key belongs to this replica now.
func (r *Ring) Owns(key string) bool { return r.View().Owns(key) }

// Rank is View.Rank on the current view.
func (r *Ring) Rank(key string) int { return r.View().Rank(key) }

// Duration is how long a membership lasts without renewal.
func (r *Ring) Duration() time.Duration { return r.opts.Duration }

// Subscribe calls f, from the ring's goroutine, after every change of
// membership, with the views before and after. f must not block: the next
// change waits for it.
func (r *Ring) Subscribe(f func(before, after View)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subs = append(r.subs, f)
}

// NeedLeaderElection is false: every replica is a member.
func (*Ring) NeedLeaderElection() bool { return false }

// Start joins the ring and keeps this replica's view until ctx ends, then
// leaves it (deletes the member Lease, so the others take over at once).
func (r *Ring) Start(ctx context.Context) error {
	inf, err := r.cache.GetInformer(ctx, &coordinationv1.Lease{})
	if err != nil {
		return fmt.Errorf("ring: watching leases: %w", err)
	}
	onMember := func(obj any) {
		if l, ok := obj.(*coordinationv1.Lease); !ok || l.Labels[Label] == LabelValue {
			r.poke()
		} // a tombstone (not a Lease) may be a member: look again
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    onMember,
		UpdateFunc: func(_, obj any) { onMember(obj) },
		DeleteFunc: onMember,
	})
	if err != nil {
		return fmt.Errorf("ring: watching leases: %w", err)
	}
	defer func() { _ = inf.RemoveEventHandler(reg) }()

	var renewing sync.WaitGroup
	renewing.Go(func() { r.renewLoop(ctx) })
	r.log.Info("Joining the ring", "namespace", r.opts.Namespace, "duration", r.opts.Duration)
	for {
		next := r.evaluate(ctx)
		var timer clock.Timer
		var fire <-chan time.Time
		if !next.IsZero() {
			// Just past the expiry, so that the member is seen expired.
			timer = r.opts.Clock.NewTimer(next.Sub(r.opts.Clock.Now()) + time.Millisecond)
			fire = timer.C()
		}
		select {
		case <-ctx.Done():
			renewing.Wait()
			r.leave()
			return nil
		case <-r.kick:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

func (r *Ring) poke() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// evaluate recomputes the live members, publishes the view if it changed,
// and returns when it must look again (the next expiry; zero: none).
func (r *Ring) evaluate(ctx context.Context) time.Time {
	now := r.opts.Clock.Now()
	var next time.Time
	soonest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	var live []string
	if until := r.alive.Load(); until != 0 && now.UnixNano() < until {
		live = append(live, r.opts.Identity)
		soonest(time.Unix(0, until))
	}
	list := &coordinationv1.LeaseList{}
	if err := r.cache.List(ctx, list, client.InNamespace(r.opts.Namespace), client.MatchingLabels{Label: LabelValue}, client.UnsafeDisableDeepCopy); err != nil {
		if ctx.Err() == nil {
			r.log.Error(err, "Listing ring members; keeping the last view")
		}
		return now.Add(time.Second)
	}
	for i := range list.Items {
		l := &list.Items[i]
		id := ptr.Deref(l.Spec.HolderIdentity, "")
		if id == "" || id == r.opts.Identity || l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
			continue // ours counts by our renewals, not by the cache's copy
		}
		expires := l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second)
		if expires.After(now) {
			live = append(live, id)
			soonest(expires)
		}
	}
	after := NewView(r.opts.Identity, live...)
	before := r.View()
	if after.Equal(before) {
		return next
	}
	r.view.Store(&after)
	members.Set(float64(len(after.members)))
	changes.Inc()
	r.log.Info("Ring membership changed", "members", after.members, "before", before.members)
	r.mu.Lock()
	subs := r.subs
	r.mu.Unlock()
	for _, f := range subs {
		f(before, after)
	}
	return next
}

// renewLoop renews our member Lease every Duration/3, sooner after a failure.
// The period counts from each renewal's start, so a slow write does not push
// the next one later.
func (r *Ring) renewLoop(ctx context.Context) {
	for {
		start := r.opts.Clock.Now()
		wait := r.opts.Duration / 3
		if err := r.renew(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			renewFailures.Inc()
			r.log.Error(err, "Renewing ring membership")
			wait = max(r.opts.Duration/15, 100*time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return
		case <-r.opts.Clock.After(start.Add(wait).Sub(r.opts.Clock.Now())):
		}
	}
}

// renew writes our Lease with a fresh renewTime. It counts from the time
// before the write, as the others do from the renewTime written.
func (r *Ring) renew(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Duration/3)
	defer cancel()
	now := metav1.NewMicroTime(r.opts.Clock.Now())
	secs := int32(r.opts.Duration / time.Second)
	key := client.ObjectKey{Namespace: r.opts.Namespace, Name: LeaseName(r.opts.Identity)}
	if r.own == nil {
		l := &coordinationv1.Lease{}
		switch err := r.client.Get(ctx, key, l); {
		case apierrors.IsNotFound(err):
			l = &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: key.Name, Namespace: key.Namespace, Labels: map[string]string{Label: LabelValue}},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(r.opts.Identity), LeaseDurationSeconds: &secs,
					AcquireTime: &now, RenewTime: &now},
			}
			if o := r.opts.Owner; o != nil {
				l.OwnerReferences = []metav1.OwnerReference{*o}
			}
			if err := r.client.Create(ctx, l); err != nil {
				return fmt.Errorf("creating member lease %s: %w", key, err)
			}
			r.renewed(l, now.Time)
			return nil
		case err != nil:
			return fmt.Errorf("reading member lease %s: %w", key, err)
		}
		r.own = l
	}
	l := r.own.DeepCopy()
	if l.Labels == nil {
		l.Labels = map[string]string{}
	}
	l.Labels[Label] = LabelValue
	l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = ptr.To(r.opts.Identity), &secs, &now
	if err := r.client.Update(ctx, l); err != nil {
		r.own = nil // read it again: someone else wrote it, or it is gone
		return fmt.Errorf("renewing member lease %s: %w", key, err)
	}
	r.renewed(l, now.Time)
	return nil
}

func (r *Ring) renewed(l *coordinationv1.Lease, at time.Time) {
	r.own = l
	was := r.alive.Swap(at.Add(r.opts.Duration).UnixNano())
	if was == 0 || r.opts.Clock.Now().UnixNano() >= was {
		r.poke() // we were not live: now we are
	}
}

// leave stops owning and deletes our Lease, if we still hold the version we
// wrote. A Lease left behind (the delete failed) expires after Duration.
func (r *Ring) leave() {
	r.alive.Store(0)
	empty := NewView(r.opts.Identity)
	r.view.Store(&empty)
	members.Set(0)
	if r.own == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.client.Delete(ctx, r.own, client.Preconditions{UID: &r.own.UID, ResourceVersion: &r.own.ResourceVersion})
	if err != nil && !apierrors.IsNotFound(err) {
		r.log.Error(err, "Leaving the ring; the member Lease expires instead", "after", r.opts.Duration)
		return
	}
	r.log.Info("Left the ring")
}
