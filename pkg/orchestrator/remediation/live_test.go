package remediation

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/pkg/lease"
)

// liveClientTimesOutWithinTheLease: a request the API server never
// answers must fail well within the lock's duration, so that a hung write
// cannot outlive the lock it was made under.
func liveClientTimesOutWithinTheLease(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select { // hang until the client gives up or the test ends
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)

	const duration = 4 * time.Second // cap: 1 s
	sch := runtime.NewScheme()
	if err := scheme.AddToScheme(sch); err != nil {
		t.Fatal(err)
	}
	cfg := lease.LiveConfig(&rest.Config{Host: srv.URL}, duration)
	mapper := meta.NewDefaultRESTMapper(nil) // static: no discovery request
	mapper.Add(coordinationv1.SchemeGroupVersion.WithKind("Lease"), meta.RESTScopeNamespace)
	c, err := client.New(cfg, client.Options{Scheme: sch, Mapper: mapper})
	if err != nil {
		t.Fatal(err)
	}
	// The context deadline only keeps a failing test from hanging: the
	// client's own timeout must end the call long before it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- c.Get(ctx, client.ObjectKey{Namespace: "ns", Name: "l"}, &coordinationv1.Lease{}) }()
	select {
	case err = <-done:
	case <-time.After(15 * time.Second): // a request that ignores even ctx
		t.Fatal("Get still hung after 15s")
	}
	if took := time.Since(start); ctx.Err() != nil || took >= duration {
		t.Fatalf("Get returned after %v (context: %v): want the client's timeout, under the lease duration %v", took, ctx.Err(), duration)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Get: got %v, want a client timeout", err)
	}
}
