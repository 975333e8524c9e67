package faults

import (
	"context"
	"testing"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestLeases(t *testing.T) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	base := fake.NewClientBuilder().WithScheme(s).Build()
	ctx := context.Background()
	// Every write fails; about half were applied all the same.
	f := New(struct{ client.Client }{base}, 1)
	var applied int
	for i := range 40 {
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "l" + string(rune('a'+i))}}
		err := f.Create(ctx, l)
		if !apierrors.IsServiceUnavailable(err) && !apierrors.IsTimeout(err) {
			t.Fatalf("Create = %v; want an injected failure", err)
		}
		if base.Get(ctx, client.ObjectKeyFromObject(l), &coordinationv1.Lease{}) == nil {
			applied++
			if !apierrors.IsTimeout(err) {
				t.Errorf("an applied write reported %v; want a lost response", err)
			}
		}
	}
	if f.Writes.Load() != 40 || f.Injected.Load() != 40 || applied == 0 || applied == 40 {
		t.Errorf("writes=%d injected=%d applied=%d", f.Writes.Load(), f.Injected.Load(), applied)
	}
	// Reads pass through, and at rate 0 so do writes.
	clean := New(base, 0)
	if err := clean.Delete(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "x"}}); !apierrors.IsNotFound(err) {
		t.Errorf("Delete at rate 0 = %v; want the server's answer", err)
	}
	if err := clean.List(ctx, &coordinationv1.LeaseList{}); err != nil || clean.Injected.Load() != 0 {
		t.Errorf("List = %v, injected %d", err, clean.Injected.Load())
	}
}
