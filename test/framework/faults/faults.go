// Package faults injects API failures into Lease writes, for the suites and
// benchmarks that prove the lock survives them.
package faults

import (
	"context"
	"math/rand/v2"
	"sync/atomic"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Leases fails a share (Rate) of writes: half before the write reaches the
// API server, half after it was applied, with the response lost.
type Leases struct {
	client.Client
	Rate             float64
	Writes, Injected atomic.Int64
}

func (f *Leases) fail(write func() error) error {
	f.Writes.Add(1)
	if rand.Float64() >= f.Rate {
		return write()
	}
	f.Injected.Add(1)
	if rand.IntN(2) == 0 {
		return apierrors.NewServiceUnavailable("injected: lease write failed before it was sent")
	}
	_ = write()
	return apierrors.NewTimeoutError("injected: lease write applied, response lost", 1)
}

func (f *Leases) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	return f.fail(func() error { return f.Client.Create(ctx, obj, opts...) })
}

func (f *Leases) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	return f.fail(func() error { return f.Client.Update(ctx, obj, opts...) })
}

func (f *Leases) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	return f.fail(func() error { return f.Client.Delete(ctx, obj, opts...) })
}
