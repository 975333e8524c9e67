package target

import (
	"context"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	metadatafake "k8s.io/client-go/metadata/fake"
	clienttesting "k8s.io/client-go/testing"
)

func crdMeta(name string) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apiextensions.k8s.io/v1", Kind: "CustomResourceDefinition"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}
}

func newFakeMetadata(objs ...runtime.Object) *metadatafake.FakeMetadataClient {
	s := metadatafake.NewTestScheme()
	_ = metav1.AddMetaToScheme(s)
	return metadatafake.NewSimpleMetadataClient(s, objs...)
}

// eventually waits, bounded, for an informer's handler to run: the one
// asynchronous step here, outside the Resolver.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

func TestWatchAPIChangesInvalidates(t *testing.T) {
	mc := newFakeMetadata(crdMeta("routes.other.io"))
	r := NewResolver(Resources{}, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	if err := watchAPIChanges(ctx, mc, r); err != nil {
		t.Fatal(err)
	}
	// The initial list adds the existing CRD.
	eventually(t, "the initial add", r.stale.Load)
	crds := mc.Resource(apiChanges[0]).(metadatafake.MetadataClient)
	for _, change := range []struct {
		name string
		do   func() error
	}{
		{"create", func() error {
			_, err := crds.CreateFake(crdMeta("widgets.example.com"), metav1.CreateOptions{})
			return err
		}},
		{"update", func() error {
			m := crdMeta("widgets.example.com")
			m.Labels = map[string]string{"x": "y"}
			_, err := crds.UpdateFake(m, metav1.UpdateOptions{})
			return err
		}},
		{"delete", func() error { return crds.Delete(ctx, "widgets.example.com", metav1.DeleteOptions{}) }},
	} {
		r.stale.Store(false)
		if err := change.do(); err != nil {
			t.Fatalf("%s: %v", change.name, err)
		}
		eventually(t, change.name+" to invalidate", r.stale.Load)
	}
	apiservices := mc.Resource(apiChanges[1]).(metadatafake.MetadataClient)
	r.stale.Store(false)
	svc := &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apiregistration.k8s.io/v1", Kind: "APIService"},
		ObjectMeta: metav1.ObjectMeta{Name: "v1beta1.metrics.k8s.io"},
	}
	if _, err := apiservices.CreateFake(svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "an APIService to invalidate", r.stale.Load)
}

func TestWatchAPIChangesRefused(t *testing.T) {
	mc := newFakeMetadata()
	mc.PrependReactor("list", "apiservices", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apiregistration.k8s.io", Resource: "apiservices"}, "", nil)
	})
	err := watchAPIChanges(t.Context(), mc, NewResolver(Resources{}, nil))
	if err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "apiservices") {
		t.Fatalf("watch refused: %v, want the Forbidden error", err)
	}
}

func TestWatchAPIChangesContextEnds(t *testing.T) {
	mc := newFakeMetadata()
	mc.PrependReactor("list", "customresourcedefinitions", func(clienttesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("etcd down")
	})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := watchAPIChanges(ctx, mc, NewResolver(Resources{}, nil)); err == nil {
		t.Fatal("ctx ended before sync: want an error")
	}
}
