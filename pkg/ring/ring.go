package ring

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	coordinationv1 "k8s.io/api/coordination/v1"
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

// Client writes the member Lease, and confirms an expiry the cache shows:
// a live client, not a cache.
type Client interface {
	Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error
	List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error
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
	// confirmed maps a member the cache showed expired, but a live read
	// did not, to the expiry that read showed (the ring's goroutine only).
	confirmed map[string]time.Time
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
	r := &Ring{opts: opts, client: c, cache: ca, kick: make(chan struct{}, 1), confirmed: map[string]time.Time{},
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
	before := r.View()
	var suspects []string
	for i := range list.Items {
		id, expires, ok := member(&list.Items[i])
		if !ok || id == r.opts.Identity {
			continue // ours counts by our renewals, not by the cache's copy
		}
		if expires.After(now) {
			live = append(live, id)
			soonest(expires)
		} else if before.Has(id) {
			suspects = append(suspects, id)
		}
	}
	for _, id := range r.confirm(ctx, now, suspects) {
		live = append(live, id)
		soonest(r.confirmed[id])
	}
	after := NewView(r.opts.Identity, live...)
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

// member is the identity of a member Lease and when it expires; ok is
// false for a Lease that names no holder or no time.
func member(l *coordinationv1.Lease) (id string, expires time.Time, ok bool) {
	id = ptr.Deref(l.Spec.HolderIdentity, "")
	if id == "" || l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil {
		return "", time.Time{}, false
	}
	return id, l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second), true
}

// confirm returns those of suspects, members of the last view whose Lease
// the cache shows expired, that a live read shows renewed. A watch that
// lags (an API server under load, a watch being re-established) would
// otherwise shrink the ring, to this replica alone at worst, and move every
// object at once, as the next events move them back. One LIST confirms all
// of them; a confirmed expiry is trusted until it passes, so a lagging
// cache costs one LIST per renewal period, not one per event. A dead
// member costs each replica one LIST. If the read fails, the cache's view
// stands.
func (r *Ring) confirm(ctx context.Context, now time.Time, suspects []string) []string {
	var live, unsure []string
	for _, id := range suspects {
		if r.confirmed[id].After(now) {
			live = append(live, id)
		} else {
			unsure = append(unsure, id)
		}
	}
	if len(unsure) == 0 {
		return live
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.Duration/3)
	defer cancel()
	list := &coordinationv1.LeaseList{}
	if err := r.client.List(ctx, list, client.InNamespace(r.opts.Namespace), client.MatchingLabels{Label: LabelValue}); err != nil {
		if ctx.Err() == nil {
			r.log.Error(err, "Confirming expired ring members; taking the cache's word", "members", unsure)
		}
		return live
	}
	for i := range list.Items {
		id, expires, ok := member(&list.Items[i])
		if ok && slices.Contains(unsure, id) && expires.After(now) {
			r.confirmed[id] = expires
			live = append(live, id)
			refuted.Inc()
		}
	}
	for id, until := range r.confirmed {
		if !until.After(now) {
			delete(r.confirmed, id)
		}
	}
	return live
}
