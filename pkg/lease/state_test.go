package lease

import (
	"context"
	"errors"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

func TestDecode(t *testing.T) {
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: key.LeaseName(), CreationTimestamp: metav1.NewTime(t0.Add(-time.Hour)),
			Annotations: map[string]string{TargetAnnotation: key.String(), ClaimUIDAnnotation: "uid-1"}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("demo/wfe-1"), LeaseDurationSeconds: ptr.To[int32](20),
			RenewTime: &metav1.MicroTime{Time: t0}},
	}
	st := Decode(l)
	if st.Key != key || !st.ClaimedBy("uid-1") || st.Holder != "demo/wfe-1" || !st.Acquired.Equal(t0) || !st.Expires.Equal(t0.Add(20*time.Second)) {
		t.Errorf("Decode = %+v", st)
	}
	if st.Expired(t0.Add(19*time.Second)) || !st.Expired(t0.Add(20*time.Second)) {
		t.Error("a claim expires at renew time plus duration, not before")
	}
	bare := Decode(&coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(t0)}})
	if bare.Phase != Locked || !bare.Acquired.Equal(t0) || !bare.Expired(t0) {
		t.Errorf("Decode(bare) = %+v; want a lock expired since its creation", bare)
	}
}

func TestTombstones(t *testing.T) {
	var none *Tombstones
	if none.Has("uid") {
		t.Error("nil Tombstones hold a UID")
	}
	ts := NewTombstones(time.Minute)
	ts.Add("old", t0)
	if !ts.Has("old") || ts.Has("other") {
		t.Error("Has after Add: want the added UID only")
	}
	ts.Add("new", t0.Add(time.Minute))
	if ts.Has("old") || !ts.Has("new") {
		t.Error("a UID is kept for keep, on the clock Add is given")
	}
}

func TestPeek(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
	tok := acquire(t, f.lock)
	if st, err := f.lock.Peek(ctx, key); err != nil || st.Cached() || st.Holder != tok.ID {
		t.Errorf("Peek without a cache = %+v, %v; want a live read of the lock", st, err)
	}
	cached := func(c client.Reader) *Lock {
		l, err := New(f.base, Options{Namespace: ns, Identity: "orchestrator-1", Clock: f.clock, Cache: c})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if st, err := cached(f.base).Peek(ctx, key); err != nil || !st.Cached() || st.Phase != Locked || st.Holder != tok.ID {
		t.Errorf("Peek = %+v, %v; want the cached lock, marked cached", st, err)
	}
	if st, err := cached(f.base).Peek(ctx, mustKey("demo/Deployment/other")); err != nil || !st.Cached() || st.Phase != Free {
		t.Errorf("Peek(no Lease) = %+v, %v; want free, marked cached", st, err)
	}
	broken := interceptor.NewClient(f.base, interceptor.Funcs{
		Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
			return errServer
		},
	})
	if st, err := cached(broken).Peek(ctx, key); !errors.Is(err, errServer) || st.Phase != "" {
		t.Errorf("Peek(cache fails) = %+v, %v; want the error, never free", st, err)
	}
}

func TestStateString(t *testing.T) {
	for st, want := range map[State]string{
		{Phase: Free}:                                 "free",
		{Phase: Claimed, Holder: "demo/wfe-1"}:        "claimed by WorkflowExecution demo/wfe-1",
		{Phase: Locked, Holder: "pod_1", Expires: t0}: "locked by pod_1 until 2026-01-01T12:00:00Z",
		{Phase: "Odd"}:                                "Odd",
	} {
		if got := st.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

func TestIndexHolder(t *testing.T) {
	claim := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{ClaimUIDAnnotation: "uid-1"}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("demo/wfe-1")}}
	lock := &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("pod_1")}}
	if got := IndexHolder(claim); len(got) != 1 || got[0] != "demo/wfe-1" {
		t.Errorf("IndexHolder(claim) = %v, want its WFE", got)
	}
	if got := IndexHolder(lock); got != nil {
		t.Errorf("IndexHolder(lock) = %v, want none", got)
	}
	if got := IndexHolder(&corev1.ConfigMap{}); got != nil {
		t.Errorf("IndexHolder(not a Lease) = %v, want none", got)
	}
}

func TestTokenAndPod(t *testing.T) {
	f := newFixture(t, "orchestrator-0", interceptor.Funcs{})
	f.clock.Step(time.Second)
	if tok := acquire(t, f.lock); !tok.Acquired().Equal(t0.Add(time.Second)) || PodOf(tok.ID) != "orchestrator-0" {
		t.Errorf("token %s acquired at %v; want orchestrator-0's, at the clock's now", tok.ID, tok.Acquired())
	}
	if PodOf("nonce-less") != "nonce-less" || PodOf("_x") != "_x" {
		t.Error("PodOf an ID without an identity_nonce split: want the ID whole")
	}
	if f.lock.Duration() != 10*time.Second || f.lock.ClaimGrace() != 20*time.Second {
		t.Errorf("Duration, ClaimGrace = %v, %v; want the Options'", f.lock.Duration(), f.lock.ClaimGrace())
	}
}
