package ring

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// This replica's own membership: its member Lease, renewed, and deleted
// when it leaves.

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
