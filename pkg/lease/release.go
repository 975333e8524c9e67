package lease

import (
	"context"
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Renew extends the lock held by tok. It returns ErrNotHeld when the lock
// was taken over, claimed or released.
func (l *Lock) Renew(ctx context.Context, tok Token) error {
	for range maxAttempts {
		st, err := l.Inspect(ctx, tok.Key)
		if err != nil {
			return err
		}
		if st.Phase != Locked || st.Holder != tok.ID {
			return fmt.Errorf("renewing %s: %w (now %s)", tok.Key, ErrNotHeld, st)
		}
		lease := st.lease.DeepCopy()
		renewed := metav1.NewMicroTime(l.clock.Now())
		lease.Spec.RenewTime = &renewed
		err = l.client.Update(ctx, lease)
		switch {
		case err == nil:
			tok.wrote(lease)
			return nil
		case apierrors.IsConflict(err):
			continue // re-read: someone wrote, it may no longer be ours
		case l.renewed(ctx, tok, st.lease.ResourceVersion, renewed):
			return nil
		default:
			apiErrors.WithLabelValues("update").Inc()
			return fmt.Errorf("renewing lease of %s: %w", tok.Key, err)
		}
	}
	return fmt.Errorf("renewing %s: %w (lost %d compare-and-swaps)", tok.Key, ErrNotHeld, maxAttempts)
}

// renewed reports whether a renewal whose response was lost was applied:
// the Lease changed from the version renewed, and holds our token and time.
func (l *Lock) renewed(ctx context.Context, tok Token, from string, at metav1.MicroTime) bool {
	st, err := l.Inspect(ctx, tok.Key)
	if err != nil || st.lease.ResourceVersion == from || st.Phase != Locked || st.Holder != tok.ID || !st.Renewed.Equal(at.Time) {
		return false
	}
	tok.wrote(st.lease)
	return true
}

// Release deletes the lock if, and only if, tok still holds it: the delete
// carries UID and resourceVersion preconditions, so a Lease taken over or
// claimed since the read is left alone. Releasing twice is harmless. If ctx
// has ended, Release still runs with a short timeout of its own, so a
// cancelled reconcile does not leave its lock behind until it expires.
func (l *Lock) Release(ctx context.Context, tok Token) error {
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
	}
	if l.releaseWritten(ctx, tok) {
		return nil
	}
	// An API error is retried too: a lock left behind blocks its target
	// for the whole duration. If every attempt fails, the token is
	// remembered, so that this Lock's next Acquire takes the lock over.
	var last error
	for range maxAttempts {
		st, err := l.Inspect(ctx, tok.Key)
		if err != nil {
			last = err
			continue
		}
		if st.Phase != Locked || st.Holder != tok.ID {
			releases.WithLabelValues("not_held").Inc()
			return nil
		}
		switch err := l.deleteObserved(ctx, st); {
		case err == nil:
			l.released(tok)
			return nil
		case apierrors.IsConflict(err):
			last = fmt.Errorf("lost the compare-and-swap: %w", err)
		default:
			last = err
		}
	}
	releases.WithLabelValues("error").Inc()
	l.mu.Lock()
	l.orphans[tok.Key.LeaseName()] = tok.ID
	l.mu.Unlock()
	return fmt.Errorf("releasing lease of %s after %d attempts: %w", tok.Key, maxAttempts, last)
}

// releaseWritten deletes the version of the Lease that tok last wrote, in
// one request. It reports false when that did not settle it (no version
// known, or an unclear error): the caller then reads the Lease and decides.
func (l *Lock) releaseWritten(ctx context.Context, tok Token) bool {
	w := tok.written
	if w == nil || w.version == "" {
		return false
	}
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: l.namespace, Name: tok.Key.LeaseName()}}
	err := l.client.Delete(ctx, lease, client.Preconditions{UID: &w.uid, ResourceVersion: &w.version})
	switch {
	case err == nil:
		l.released(tok)
		return true
	case apierrors.IsNotFound(err), apierrors.IsConflict(err):
		// Swept, or written by someone else since: claimed for our CREATE,
		// or taken over after it expired. Not ours to delete.
		releases.WithLabelValues("not_held").Inc()
		return true
	}
	return false
}

// deleteObserved deletes exactly the Lease version st observed. NotFound
// counts as done.
func (l *Lock) deleteObserved(ctx context.Context, st State) error {
	uid, rv := st.lease.UID, st.lease.ResourceVersion
	err := l.client.Delete(ctx, st.lease, client.Preconditions{UID: &uid, ResourceVersion: &rv})
	switch {
	case err == nil, apierrors.IsNotFound(err):
		return nil
	case apierrors.IsConflict(err):
		return err
	}
	apiErrors.WithLabelValues("delete").Inc()
	// The delete may have been applied with its response lost: if the
	// version we deleted is gone, it is done; if it is still there, or
	// another replaced it, the caller decides again.
	now := &coordinationv1.Lease{}
	switch gerr := l.client.Get(ctx, client.ObjectKeyFromObject(st.lease), now); {
	case apierrors.IsNotFound(gerr):
		return nil
	case gerr == nil && now.UID != uid:
		return nil
	}
	return err
}

// released counts a release and how long tok held its lock.
func (l *Lock) released(tok Token) {
	releases.WithLabelValues("released").Inc()
	if !tok.acquired.IsZero() {
		holdSeconds.Observe(l.clock.Since(tok.acquired).Seconds())
	}
}
