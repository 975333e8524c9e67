package admission_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

// TestAdmissionStorm sends concurrent direct CREATEs (no orchestrator, no
// token) for one target through the API server, for many targets in turn:
// exactly one per target may be admitted.
func TestAdmissionStorm(t *testing.T) {
	const targets, perTarget = 20, 50
	f, ns := inNewNamespace(t)

	creates, admitted, duplicates := 0, 0, 0
	unexpected := map[string]int{}
	for i := range targets {
		tgt := fmt.Sprintf("%s/Deployment/storm-%02d", ns, i)
		accepted := storm(t, f, ns, tgt, i, perTarget, unexpected)
		creates += perTarget
		admitted += accepted
		duplicates += checkStormed(t, f, ns, tgt, perTarget, accepted)
	}
	for msg, n := range unexpected {
		t.Errorf("%d CREATEs refused for an unexpected reason: %s", n, msg)
	}
	fmt.Printf("admission storm: creates=%d admitted=%d targets=%d duplicates=%d\n", creates, admitted, targets, duplicates)
	if creates != targets*perTarget || admitted != targets || duplicates != 0 {
		t.Fatalf("admission storm: want creates=%d admitted=%d duplicates=0", targets*perTarget, targets)
	}
}

// storm sends perTarget concurrent CREATEs for tgt (the ith target) and
// returns how many were admitted. It counts in unexpected the refusals a
// loser of the race should not get.
func storm(t *testing.T, f *fixture, ns, tgt string, i, perTarget int, unexpected map[string]int) int {
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		accepted int
	)
	for j := range perTarget {
		wg.Go(func() {
			st := create(t, f, newWFE(ns, fmt.Sprintf("storm-%02d-%02d", i, j), tgt))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case st == nil:
				accepted++
			case !stormLoser(st):
				unexpected[fmt.Sprintf("%d %s", st.Code, st.Message)]++
			}
		})
	}
	wg.Wait()
	return accepted
}

// stormLoser reports whether st is a refusal a loser of a storm may get.
func stormLoser(st *metav1.Status) bool {
	switch {
	case st.Code == http.StatusForbidden && contains(st.Message, admission.ReasonResourceBusy+":"),
		// the winner admitted but not stored yet:
		st.Code == http.StatusForbidden && contains(st.Message, admission.ReasonClaimPending+":"),
		st.Code == http.StatusConflict && contains(st.Message, admission.ReasonContended+":"):
		return true
	}
	return false
}

// checkStormed checks that tgt, after its storm of perTarget CREATEs of
// which accepted were admitted, has exactly one WFE stored, the one its
// Lease names. It returns the number of WFEs stored beyond one.
func checkStormed(t *testing.T, f *fixture, ns, tgt string, perTarget, accepted int) int {
	t.Helper()
	list := &v1alpha1.WorkflowExecutionList{}
	if err := f.env.Client.List(context.Background(), list, client.MatchingFields{v1alpha1.TargetField: tgt}); err != nil {
		t.Fatalf("listing WFEs of %s: %v", tgt, err)
	}
	duplicates := max(len(list.Items)-1, 0)
	if len(list.Items) != accepted {
		t.Errorf("%s: %d CREATEs admitted but %d WFEs stored", tgt, accepted, len(list.Items))
	}
	if accepted != 1 {
		t.Errorf("%s: want exactly 1 of %d CREATEs admitted, got %d", tgt, perTarget, accepted)
	}
	if s := inspect(t, f, tgt); s.Phase != lease.Claimed || (len(list.Items) == 1 && s.Holder != ns+"/"+list.Items[0].Name) {
		t.Errorf("%s: want the Lease claimed by the admitted WFE, got %s", tgt, s)
	}
	return duplicates
}

// TestWebhookReplicas: two webhook replicas (or one restarted: a new
// Handler with no memory of the old) share nothing but the Leases. Called
// concurrently for the same targets, they admit one CREATE per target.
func TestWebhookReplicas(t *testing.T) {
	const targets, perTarget = 10, 20
	f, ns := inNewNamespace(t)
	ctx := context.Background()
	replicas := make([]*admission.Handler, 2)
	for i := range replicas {
		lock, err := lease.New(f.env.Client, lease.Options{Namespace: leaseNamespace, Identity: fmt.Sprintf("webhook-%d", i+1),
			Duration: lockDuration, ClaimGrace: claimGrace, Clock: f.clock})
		if err != nil {
			t.Fatal(err)
		}
		if replicas[i], err = admission.New(admission.Options{Lock: lock, Resolver: f.resolver, Reader: f.env.Client, Clock: f.clock, Trust: admission.Trust{Orchestrator: testenv.AdminUser}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range targets {
		tgt := fmt.Sprintf("%s/Deployment/replicas-%02d", ns, i)
		var (
			mu      sync.Mutex
			wg      sync.WaitGroup
			allowed []string
		)
		for j := range perTarget {
			wg.Go(func() {
				w := newWFE(ns, fmt.Sprintf("r-%02d-%02d", i, j), tgt)
				resp := replicas[j%2].Handle(ctx, createRequest(w))
				if resp.Allowed {
					mu.Lock()
					allowed = append(allowed, w.Name)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(allowed) != 1 {
			t.Errorf("%s: want exactly one CREATE admitted across replicas, got %v", tgt, allowed)
			continue
		}
		wantHolder(t, f, tgt, ns+"/"+allowed[0])
	}
}
