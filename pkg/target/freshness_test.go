package target_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kdiscovery "k8s.io/client-go/discovery"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/pkg/target/targettest"
)

// discovery counts its calls and can fail or gain kinds.
type discovery struct {
	calls int
	err   error
	res   target.Resources
}

func (d *discovery) ServerPreferredResources() ([]*metav1.APIResourceList, error) {
	d.calls++
	return d.res, d.err
}

func TestRediscoveryOnMissIsBounded(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
	d := &discovery{res: targettest.Resources[:1]}
	r := target.NewResolver(d, clk)
	if _, err := r.Parse("demo/Deployment/app"); !errors.Is(err, target.ErrInvalid) {
		t.Fatalf("before apps is served: %v, want ErrInvalid", err)
	}
	for range 100 {
		_, _ = r.Parse("demo/Gadget/app")
	}
	if d.calls != 1 {
		t.Errorf("discovery called %d times within MinRefresh, want 1", d.calls)
	}
	d.res = targettest.Resources // a CRD or group installed since
	clk.SetTime(clk.Now().Add(target.MinRefresh))
	if _, err := r.Parse("demo/Deployment/app"); err != nil {
		t.Errorf("after MinRefresh: %v", err)
	}
	if _, err := r.Parse("Node/w1"); err != nil || d.calls != 2 {
		t.Errorf("a known kind must not rediscover: %v, calls=%d", err, d.calls)
	}
}

func TestDiscoveryErrorIsTransient(t *testing.T) {
	d := &discovery{err: errors.New("connection refused")}
	_, err := target.NewResolver(d, nil).Parse("Node/w1")
	if err == nil || errors.Is(err, target.ErrInvalid) {
		t.Errorf("discovery down: %v, want a transient error", err)
	}
}

// cachedDiscovery is a discovery with a cache to invalidate, as kubectl's.
type cachedDiscovery struct {
	discovery
	invalidations int
}

func (c *cachedDiscovery) Invalidate() { c.invalidations++ }

func TestInvalidate(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
	d := &cachedDiscovery{discovery: discovery{res: api(core, []string{"a.io/v1", "routes:Route:cluster"})}}
	r := target.NewResolver(d, clk)
	parse := func(s string) string {
		t.Helper()
		k, err := r.Parse(s)
		if err != nil {
			return "error: " + err.Error()
		}
		return k.String()
	}
	if got := parse("payment/Route/web"); got != "Route.*/web" || d.calls != 1 {
		t.Fatalf("first lookup = %q, calls=%d", got, d.calls)
	}
	// The CRD turns namespaced (deleted and created again): a known
	// spelling changes meaning, which only a re-read shows.
	d.res = api(core, []string{"a.io/v1", "routes:Route:ns"})
	if got := parse("payment/Route/web"); got != "Route.*/web" || d.calls != 1 {
		t.Fatalf("without Invalidate = %q, calls=%d; want the table kept", got, d.calls)
	}
	r.Invalidate()
	if got := parse("payment/Route/web"); got != "payment/Route.*/web" || d.calls != 2 || d.invalidations != 1 {
		t.Errorf("after Invalidate = %q, calls=%d, cache invalidations=%d", got, d.calls, d.invalidations)
	}
	if parse("Node/w1"); d.calls != 2 {
		t.Errorf("one Invalidate re-read discovery %d times", d.calls-1)
	}
	// A failed re-read keeps serving the table it meant to refresh, and
	// stays stale: the next lookup tries again. A miss is then transient.
	r.Invalidate()
	d.err = errors.New("connection refused")
	if got := parse("Node/w1"); got != "Node/w1" {
		t.Errorf("re-read failing = %q, want the kept table's answer", got)
	}
	if got := parse("demo/Gadget/g"); !strings.Contains(got, "connection refused") {
		t.Errorf("re-read failing, unknown kind = %q, want the transient error", got)
	}
	d.err = nil
	if got := parse("Node/w1"); got != "Node/w1" || d.calls != 5 {
		t.Errorf("after the failure = %q, calls=%d; want a new read", got, d.calls)
	}
}

func TestMaxAge(t *testing.T) {
	for _, tt := range []struct {
		opts []target.Option
		age  time.Duration
	}{
		{nil, target.MaxAge},
		{[]target.Option{target.WithMaxAge(5 * time.Second)}, 5 * time.Second},
		{[]target.Option{target.WithMaxAge(0)}, target.MaxAge},
	} {
		clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
		d := &discovery{res: targettest.Resources}
		r := target.NewResolver(d, clk, tt.opts...)
		mustParse := func() {
			t.Helper()
			if _, err := r.Parse("demo/Deployment/app"); err != nil {
				t.Fatal(err)
			}
		}
		mustParse()
		clk.SetTime(clk.Now().Add(tt.age - time.Nanosecond))
		if mustParse(); d.calls != 1 {
			t.Errorf("max age %v: re-read before it, calls=%d", tt.age, d.calls)
		}
		clk.SetTime(clk.Now().Add(time.Nanosecond))
		if mustParse(); d.calls != 2 {
			t.Errorf("max age %v: a known spelling did not re-read at it, calls=%d", tt.age, d.calls)
		}
		if mustParse(); d.calls != 2 {
			t.Errorf("max age %v: re-read twice, calls=%d", tt.age, d.calls)
		}
	}
}

// A group whose discovery failed may serve the kind a spelling names: not
// finding it there is transient, not final.
func TestPartialDiscovery(t *testing.T) {
	failed := &kdiscovery.ErrGroupDiscoveryFailed{Groups: map[schema.GroupVersion]error{
		{Group: "metrics.k8s.io", Version: "v1beta1"}: errors.New("service unavailable"),
	}}
	r := target.NewResolver(&discovery{res: targettest.Resources, err: failed}, nil)
	if k, err := r.Parse("demo/Deployment/app"); err != nil || k.String() != "demo/Deployment.apps/app" {
		t.Errorf("known kind = %v, %v", k, err)
	}
	for _, s := range []string{"demo/PodMetrics/p", "demo/PodMetrics.metrics.k8s.io/p", "demo/podmetrics.*/p"} {
		if _, err := r.Parse(s); err == nil || errors.Is(err, target.ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want a transient error", s, err)
		}
	}
	if _, err := r.Parse("demo/Deployment.batch/app"); !errors.Is(err, target.ErrInvalid) {
		t.Errorf("a group that answered: %v, want ErrInvalid", err)
	}
}

// Lookups race with invalidations and clock steps (run with -race).
func TestConcurrentLookups(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(1000, 0))
	r := target.NewResolver(targettest.Resources, clk)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 200 {
				switch {
				case i == 0 && j%10 == 0:
					r.Invalidate()
				case i == 1 && j%10 == 0:
					clk.SetTime(clk.Now().Add(target.MaxAge))
				}
				k, err := r.Parse("payment/routes.other.io/web")
				if err != nil || k.String() != "payment/Route.*/web" {
					t.Errorf("Parse = %v, %v", k, err)
					return
				}
				_ = r.Spelling(k)
			}
		})
	}
	wg.Wait()
}
