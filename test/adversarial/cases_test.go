package adversarial_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/manager"
	"github.com/targetlock/targetlock/pkg/orchestrator"
	"github.com/targetlock/targetlock/pkg/routing"
	"github.com/targetlock/targetlock/test/framework/cluster"
	"github.com/targetlock/targetlock/test/framework/faults"
	"github.com/targetlock/targetlock/test/framework/testenv"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

// opsA and opsB are namespaces the orchestrators trust to name any object:
// requests for Nodes come from there.
const opsA, opsB = "adv-ops-a", "adv-ops-b"

func namedNamespace(t *testing.T, name string) string {
	t.Helper()
	if err := api.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

// deleteFrees are the delays from deleting the WFE that owns an object to
// the next CREATE for it being admitted.
var deleteFrees []time.Duration

var cases = []adversarialCase{
	{"a Deployment spelled six ways, 24 concurrent CREATEs: one admitted", func(t *testing.T) {
		ns := newNamespace(t, nil)
		spellings := []string{"Deployment", "deployments", "deploy", "Deployment.apps", "DEPLOYMENT", "deployment.apps"}
		var wfes []*v1alpha1.WorkflowExecution
		for i := range 24 {
			wfes = append(wfes, wrappers.MakeWFE(ns, fmt.Sprintf("spell-%02d", i)).TargetResource(ns+"/"+spellings[i%len(spellings)]+"/dep-spell").Obj())
		}
		admitted, reasons := storm(t, wfes)
		if len(admitted) != 1 {
			t.Errorf("admitted %v, want exactly one", admitted)
		}
		onlyBusy(t, reasons)
	}},

	{"one Node with and without a namespace, from three namespaces: one admitted", func(t *testing.T) {
		a, b := newNamespace(t, nil), newNamespace(t, nil)
		spellings := []string{"Node/node-spell", a + "/Node/node-spell", "monitoring/node/node-spell", "nodes/node-spell", "no/node-spell", "NODE/node-spell"}
		var wfes []*v1alpha1.WorkflowExecution
		for i, ns := range []string{a, b, cluster.LeaseNamespace} {
			for j, s := range spellings {
				wfes = append(wfes, wrappers.MakeWFE(ns, fmt.Sprintf("node-%d-%d", i, j)).TargetResource(s).Obj())
			}
		}
		admitted, reasons := storm(t, wfes)
		if len(admitted) != 1 {
			t.Errorf("admitted %v, want exactly one", admitted)
		}
		onlyBusy(t, reasons)
	}},

	{"the install namespace is guarded like any other", func(t *testing.T) {
		a := newNamespace(t, nil)
		if err := api.Create(context.Background(), wrappers.MakeWFE(a, "owner").TargetResource(a+"/Deployment/dep-install").Obj()); err != nil {
			t.Fatal(err)
		}
		err := api.Create(context.Background(), wrappers.MakeWFE(cluster.LeaseNamespace, "intruder").TargetResource(a+"/deploy/dep-install").Obj())
		if err == nil || denialReason(err) != "ResourceBusy" {
			t.Errorf("a second WFE in the install namespace: %v, want ResourceBusy", err)
		}
		if err := api.Create(context.Background(), wrappers.MakeWFE(cluster.LeaseNamespace, "owner-2").TargetResource("Node/node-install").Obj()); err != nil {
			t.Fatal(err)
		}
		err = api.Create(context.Background(), wrappers.MakeWFE(a, "intruder-2").TargetResource("nodes/node-install").Obj())
		if err == nil || denialReason(err) != "ResourceBusy" {
			t.Errorf("a WFE elsewhere for an object owned from the install namespace: %v, want ResourceBusy", err)
		}
	}},

	{"malformed, unknown and scope-less targets are refused with the expected form", func(t *testing.T) {
		ns := newNamespace(t, nil)
		for tgt, want := range map[string]string{
			"Deployment/dep-scope":  "is namespaced",
			ns + "/Gadget/x":        `serves no kind "Gadget"`,
			ns + "/Route.nope.io/e": `serves no kind "Route.nope.io"`,
			ns + "/Deploy-ment/x":   "kind must be",
			ns + "/Deployment/Ünï":  "name",
			ns + "/Deployment/a/b":  "got 4",
			"/Deployment/no-ns-set": "empty namespace",
		} {
			err := api.Create(context.Background(), wrappers.MakeWFE(ns, "bad").TargetResource(tgt).Obj())
			switch {
			case err == nil:
				t.Errorf("%q admitted", tgt)
			case !isRefusedAsInvalid(err) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "namespace/Kind/name"):
				t.Errorf("%q: %v; want a 4xx naming %q and the expected form", tgt, err, want)
			}
		}
		long := wrappers.MakeWFE(ns, "long").TargetResource(ns + "/Deployment/" + strings.Repeat("a", 500)).Obj()
		if err := api.Create(context.Background(), long); err == nil || !isRefusedAsInvalid(err) {
			t.Errorf("an oversized target: %v, want a 4xx", err)
		}
	}},

	{"a terminal WFE never becomes active again; normal progress passes", func(t *testing.T) {
		ns := newNamespace(t, nil)
		if err := api.Create(context.Background(), wrappers.MakeWFE(ns, "first").TargetResource(ns+"/Deployment/dep-final").Obj()); err != nil {
			t.Fatal(err)
		}
		for _, p := range []v1alpha1.WorkflowExecutionPhase{v1alpha1.WorkflowExecutionPending, v1alpha1.WorkflowExecutionRunning, v1alpha1.WorkflowExecutionCompleted} {
			if err := setPhase(ns, "first", p); err != nil {
				t.Fatalf("progress to %s: %v", p, err)
			}
		}
		// The orchestrator frees the object; a newer WFE owns it.
		testenv.Eventually(t, 10*time.Second, func() error {
			return api.Create(context.Background(), wrappers.MakeWFE(ns, "second").TargetResource(ns+"/deployments/dep-final").Obj())
		})
		for _, p := range []v1alpha1.WorkflowExecutionPhase{v1alpha1.WorkflowExecutionRunning, v1alpha1.WorkflowExecutionPending, ""} {
			err := setPhase(ns, "first", p)
			if err == nil || !strings.Contains(err.Error(), "final") {
				t.Errorf("Completed -> %q: %v, want refused as final", p, err)
			}
		}
		if err := setPhase(ns, "second", v1alpha1.WorkflowExecutionFailed); err != nil {
			t.Fatal(err)
		}
		if err := setPhase(ns, "second", v1alpha1.WorkflowExecutionRunning); err == nil {
			t.Error("Failed -> Running was accepted")
		}
	}},

	{"deleting the WFE that owns an object frees it within a second", func(t *testing.T) {
		ns := newNamespace(t, nil)
		tgt := ns + "/Deployment/dep-delete"
		if err := api.Create(context.Background(), wrappers.MakeWFE(ns, "w-0").TargetResource(tgt).Obj()); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 10; i++ {
			prev := &v1alpha1.WorkflowExecution{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("w-%d", i-1)}}
			start := time.Now()
			if err := api.Delete(context.Background(), prev); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 5*time.Second, func() error {
				return api.Create(context.Background(), wrappers.MakeWFE(ns, fmt.Sprintf("w-%d", i)).TargetResource(tgt).Obj())
			})
			deleteFrees = append(deleteFrees, time.Since(start))
		}
		if p := p95(deleteFrees); p > time.Second {
			t.Errorf("delete frees the object in %s at P95, want within 1s", p)
		}
	}},

	{"a CREATE refused by a ResourceQuota fails its requests instead of waiting", func(t *testing.T) {
		ns := newNamespace(t, nil)
		zero := corev1.ResourceList{"count/workflowexecutions.targetlock.io": resource.MustParse("0")}
		q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "no-wfes"}, Spec: corev1.ResourceQuotaSpec{Hard: zero}}
		if err := api.Create(context.Background(), q); err != nil {
			t.Fatal(err)
		}
		q.Status = corev1.ResourceQuotaStatus{Hard: zero, Used: zero}
		if err := api.Status().Update(context.Background(), q); err != nil {
			t.Fatal(err)
		}
		expectRefused(t, ns, "quota")
	}},

	{"a CREATE refused by another admission policy fails its requests instead of waiting", func(t *testing.T) {
		const label = "adversarial.targetlock.io/deny-wfes"
		ns := newNamespace(t, map[string]string{label: "true"})
		fail := admissionregistrationv1.Fail
		policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "adversarial-deny-wfes"},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
				FailurePolicy: &fail,
				MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionregistrationv1.RuleWithOperations{
						Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
						Rule:       admissionregistrationv1.Rule{APIGroups: []string{"targetlock.io"}, APIVersions: []string{"v1alpha1"}, Resources: []string{"workflowexecutions"}},
					},
				}}},
				Validations: []admissionregistrationv1.Validation{{Expression: "false", Message: "no WorkflowExecutions in this namespace (adversarial policy)"}},
			},
		}
		binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "adversarial-deny-wfes"},
			Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
				PolicyName:        policy.Name,
				ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
				MatchResources:    &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{label: "true"}}},
			},
		}
		for _, o := range []client.Object{policy, binding} {
			if err := api.Create(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = api.Delete(context.Background(), o) }()
		}
		// The policy is in force once the API server has loaded it.
		testenv.Eventually(t, 30*time.Second, func() error {
			err := api.Create(context.Background(), wrappers.MakeWFE(ns, "probe").TargetResource(ns+"/Deployment/dep-policy-probe").Obj(), client.DryRunAll)
			if err == nil || !strings.Contains(err.Error(), "adversarial policy") {
				return fmt.Errorf("policy not in force yet: %w", err)
			}
			return nil
		})
		expectRefused(t, ns, "adversarial policy")
	}},

	{"RRs for one Node from two trusted namespaces, spelled differently, run one at a time", func(t *testing.T) {
		a, b := namedNamespace(t, opsA), namedNamespace(t, opsB)
		rrs := []*v1alpha1.RemediationRequest{
			runRR(a, "n-0").Target("Node", "", "node-rr").Fingerprint("sig-0").Obj(),
			runRR(b, "n-1").Target("node", b, "node-rr").Fingerprint("sig-1").Obj(),
			runRR(a, "n-2").Target("nodes", "monitoring", "node-rr").Fingerprint("sig-2").Obj(),
			runRR(b, "n-3").Target("no", "", "node-rr").Fingerprint("sig-3").Obj(),
			runRR(a, "n-4").Target("NODE", a, "node-rr").Fingerprint("sig-4").Obj(),
			runRR(b, "n-5").Target("Node", "kube-system", "node-rr").Fingerprint("sig-5").Obj(),
		}
		for _, rr := range rrs {
			if err := api.Create(context.Background(), rr); err != nil {
				t.Fatal(err)
			}
		}
		allEnd(t, rrs, v1alpha1.RemediationCompleted)
	}},

	{"direct CREATEs in every spelling race an RR storm", func(t *testing.T) {
		ns := newNamespace(t, nil)
		spellings := []string{"Deployment", "deployments", "deploy.apps"}
		var (
			rrs    []*v1alpha1.RemediationRequest
			direct []*v1alpha1.WorkflowExecution
		)
		for o := range 8 {
			obj := fmt.Sprintf("dep-mix-%d", o)
			for i, s := range spellings {
				rrs = append(rrs, runRR(ns, fmt.Sprintf("%s-rr-%d", obj, i)).Target(s, ns, obj).Fingerprint(fmt.Sprintf("sig-%d", i)).Obj())
				w := wrappers.MakeWFE(ns, fmt.Sprintf("%s-direct-%d", obj, i)).TargetResource(ns+"/"+s+"/"+obj).Parameter(runParam, "yes").Obj()
				direct = append(direct, w)
			}
		}
		for _, rr := range rrs {
			if err := api.Create(context.Background(), rr); err != nil {
				t.Fatal(err)
			}
		}
		_, reasons := storm(t, direct)
		onlyBusy(t, reasons)
		allEnd(t, rrs, "")
	}},

	{"Lease writes failing, half of them applied with the response lost, leave no phantom behind", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		// The lossy replica alone decides: with the processes running, the
		// ring's owners would often decide first and it would write nothing.
		for _, p := range c.Orchestrators {
			if err := p.Stop(); err != nil {
				t.Fatal(err)
			}
		}
		defer func() {
			for _, p := range c.Orchestrators {
				if err := p.Start(); err != nil {
					t.Error(err)
				}
			}
		}()
		mo := c.Env.ManagerOptions()
		mo.Cache = manager.CacheOptions(cluster.LeaseNamespace)
		mgr, err := ctrl.NewManager(c.Env.Config, mo)
		if err != nil {
			t.Fatal(err)
		}
		faulty := faults.New(api, 0.3)
		if err := orchestrator.Setup(ctx, mgr, orchestrator.Options{LeaseNamespace: cluster.LeaseNamespace, Identity: "faulty",
			// Off the ring: it decides every object, racing the ring's members.
			LeaseClient: faulty, SweepInterval: 2 * time.Second, SkipNameValidation: true, DisableRing: true,
			Routing: routing.Options{RecentlyRemediatedCooldown: time.Millisecond, BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}}); err != nil {
			t.Fatal(err)
		}
		stop := testenv.StartManager(ctx, mgr)
		defer func() { _ = stop() }()

		ns := newNamespace(t, nil)
		var rrs []*v1alpha1.RemediationRequest
		for o := range 4 {
			for i := range 3 {
				rrs = append(rrs, runRR(ns, fmt.Sprintf("lost-%d-%d", o, i)).Target("Deployment", ns, fmt.Sprintf("dep-lost-%d", o)).Fingerprint(fmt.Sprintf("sig-%d", i)).Obj())
			}
		}
		for _, rr := range rrs {
			if err := api.Create(ctx, rr); err != nil {
				t.Fatal(err)
			}
		}
		allEnd(t, rrs, v1alpha1.RemediationCompleted)
		testenv.Eventually(t, 30*time.Second, func() error {
			leases := &coordinationv1.LeaseList{}
			if err := api.List(ctx, leases, client.InNamespace(cluster.LeaseNamespace), client.MatchingLabels{"app.kubernetes.io/managed-by": "targetlock"}); err != nil {
				return err
			}
			var left []string
			for _, l := range leases.Items {
				if strings.Contains(l.Annotations["targetlock.io/target"], "dep-lost-") {
					left = append(left, l.Name)
				}
			}
			if len(left) > 0 {
				return fmt.Errorf("leases left behind: %v", left)
			}
			return nil
		})
		if faulty.Injected.Load() == 0 {
			t.Error("no fault was injected")
		}
	}},
}

// expectRefused creates two requests of one signal for one object in ns,
// whose WFE CREATEs the API server refuses for a reason other than the
// object: both must fail with that reason, neither blocks as busy.
func expectRefused(t *testing.T, ns, want string) {
	t.Helper()
	rrs := []*v1alpha1.RemediationRequest{
		runRR(ns, "first").Target("Deployment", ns, "dep-refused-"+ns).Fingerprint("sig").Obj(),
		runRR(ns, "second").Target("Deployment", ns, "dep-refused-"+ns).Fingerprint("sig").Obj(),
	}
	for _, rr := range rrs {
		if err := api.Create(context.Background(), rr); err != nil {
			t.Fatal(err)
		}
	}
	allEnd(t, rrs, v1alpha1.RemediationFailed)
	for _, rr := range rrs {
		got, _ := rrPhase(ns, rr.Name)
		cond := findCondition(got.Status.Conditions, orchestrator.ConditionSucceeded)
		if cond == nil || cond.Reason != "WorkflowExecutionRefused" || !strings.Contains(cond.Message, want) {
			t.Errorf("%s: condition %+v, want WorkflowExecutionRefused naming %q", rr.Name, cond, want)
		}
	}
}

// allEnd waits for every request to end, in phase want if it is set.
func allEnd(t *testing.T, rrs []*v1alpha1.RemediationRequest, want v1alpha1.RemediationPhase) {
	t.Helper()
	testenv.Eventually(t, 90*time.Second, func() error {
		for _, rr := range rrs {
			got, err := rrPhase(rr.Namespace, rr.Name)
			if err != nil {
				return err
			}
			if !got.Status.Phase.Terminal() || (want != "" && got.Status.Phase != want) {
				return fmt.Errorf("%s/%s is %q (%s %s), want it ended %s", rr.Namespace, rr.Name, got.Status.Phase, got.Status.BlockReason, got.Status.BlockMessage, want)
			}
		}
		return nil
	})
}

func findCondition(cs []metav1.Condition, t string) *metav1.Condition {
	for i := range cs {
		if cs[i].Type == t {
			return &cs[i]
		}
	}
	return nil
}
