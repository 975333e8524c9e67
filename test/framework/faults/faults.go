// Package faults injects API failures into Lease writes, for the suites and
// benchmarks that prove the lock survives them.
package faults

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync/atomic"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// Leases is a client that fails a share (rate) of writes: half before the
// write reaches the API server, half after it was applied, with the
// response lost. Reads pass through.
type Leases struct {
	client.WithWatch
	Writes, Injected atomic.Int64
}

// New wraps c so that a share rate of its writes fail.
func New(c client.Client, rate float64) *Leases {
	f := &Leases{}
	fail := func(write func() error) error {
		f.Writes.Add(1)
		if rand.Float64() >= rate {
			return write()
		}
		f.Injected.Add(1)
		if rand.IntN(2) == 0 {
			return apierrors.NewServiceUnavailable("injected: lease write failed before it was sent")
		}
		_ = write()
		return apierrors.NewTimeoutError("injected: lease write applied, response lost", 1)
	}
	f.WithWatch = interceptor.NewClient(withWatch(c), interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			return fail(func() error { return c.Create(ctx, obj, opts...) })
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			return fail(func() error { return c.Update(ctx, obj, opts...) })
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			return fail(func() error { return c.Delete(ctx, obj, opts...) })
		},
	})
	return f
}

// withWatch lets interceptor wrap a client without Watch: the lock never
// watches.
func withWatch(c client.Client) client.WithWatch {
	if w, ok := c.(client.WithWatch); ok {
		return w
	}
	return noWatch{c}
}

type noWatch struct{ client.Client }

func (noWatch) Watch(context.Context, client.ObjectList, ...client.ListOption) (watch.Interface, error) {
	return nil, errors.New("faults: the wrapped client cannot watch")
}
