package lease

import (
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
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
