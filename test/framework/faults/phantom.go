package faults

import (
	"context"
	"errors"
	"sync/atomic"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// PhantomLease makes a phantom lock: the first Lease CREATE is applied but
// answered with an error, and the one re-read that would recognise it
// fails too. Later calls pass through. injected reports whether the
// phantom was made.
func PhantomLease() (_ interceptor.Funcs, injected func() bool) {
	var created, reread atomic.Bool
	return interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, o ...client.CreateOption) error {
			if err := c.Create(ctx, obj, o...); err != nil {
				return err
			}
			if _, ok := obj.(*coordinationv1.Lease); ok && created.CompareAndSwap(false, true) {
				reread.Store(true)
				return errors.New("connection reset: the answer was lost")
			}
			return nil
		},
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, o ...client.GetOption) error {
			if _, ok := obj.(*coordinationv1.Lease); ok && reread.CompareAndSwap(true, false) {
				return errors.New("connection reset")
			}
			return c.Get(ctx, key, obj, o...)
		},
	}, created.Load
}
