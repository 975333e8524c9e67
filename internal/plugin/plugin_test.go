package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/yaml"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/pkg/lease"
)

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func leaseFor(name, key, holder string, claimUID string, renewed time.Time) *coordinationv1.Lease {
	l := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: DefaultReleaseNamespace, Name: name,
			Labels:      map[string]string{lease.ManagedByLabel: lease.ManagedBy},
			Annotations: map[string]string{lease.TargetAnnotation: key}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(holder), LeaseDurationSeconds: ptr.To[int32](30),
			AcquireTime: &metav1.MicroTime{Time: renewed}, RenewTime: &metav1.MicroTime{Time: renewed}},
	}
	if claimUID != "" {
		l.Annotations[lease.ClaimUIDAnnotation] = claimUID
	}
	return l
}

// locksClient serves a lock, claims by a pending, a running and a missing
// WFE in namespace shop, and a lock on a Node.
func locksClient(t *testing.T) client.Reader {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	pending := &v1alpha1.WorkflowExecution{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "wfe-new"}}
	running := &v1alpha1.WorkflowExecution{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "wfe-run"},
		Status: v1alpha1.WorkflowExecutionStatus{Phase: v1alpha1.WorkflowExecutionRunning}}
	return fake.NewClientBuilder().WithScheme(s).WithObjects(pending, running,
		leaseFor("l1", "shop/Deployment/checkout", "orchestrator-0_0123456789abcdef", "", now.Add(-5*time.Second)),
		leaseFor("l2", "shop/Deployment/cart", "shop/wfe-new", "uid-1", now.Add(-time.Minute)),
		leaseFor("l3", "shop/Deployment/api", "shop/wfe-run", "uid-2", now.Add(-time.Minute)),
		leaseFor("l4", "shop/Deployment/gone", "shop/wfe-gone", "uid-3", now.Add(-time.Hour)),
		leaseFor("l5", "Node/worker-1", "orchestrator-1_fedcba9876543210", "", now),
	).Build()
}

// listLocks lists the locks of locksClient whose object is in namespace.
func listLocks(t *testing.T, namespace string) []Lock {
	t.Helper()
	ls, err := ListLocks(context.Background(), locksClient(t), DefaultReleaseNamespace, namespace)
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

func TestListLocks(t *testing.T) {
	ls := listLocks(t, "")
	got := map[string]Lock{}
	for _, l := range ls {
		got[l.Target] = l
	}
	for target, want := range map[string]struct{ state, holder, phase string }{
		"shop/Deployment/checkout": {"Locked", "orchestrator-0", ""},
		"shop/Deployment/cart":     {"Claimed", "shop/wfe-new", "Pending"},
		"shop/Deployment/api":      {"Claimed", "shop/wfe-run", "Running"},
		"shop/Deployment/gone":     {"Claimed", "shop/wfe-gone", "NotFound"},
		"Node/worker-1":            {"Locked", "orchestrator-1", ""},
	} {
		l := got[target]
		if l.State != want.state || l.Holder != want.holder || l.Phase != want.phase {
			t.Errorf("%s: got %+v, want %+v", target, l, want)
		}
	}

	if ls := listLocks(t, "shop"); len(ls) != 4 {
		t.Errorf("-n shop: %d locks, want 4 (not the Node's)", len(ls))
	}
}

func TestPrintLocks(t *testing.T) {
	ls := listLocks(t, "shop")
	var out bytes.Buffer
	if err := PrintLocks(&out, ls, PrintOptions{Output: "wide"}, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"TARGET", "STATE", "HOLDER", "PHASE", "AGE", "EXPIRY", "LEASE", "Pending", "NotFound",
		"Pod orchestrator-0", "renewed 5s ago, expires in 25s", "WorkflowExecution shop/wfe-run", "until the WFE ends", "EXPIRED 59m ago"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("wide table lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "0123456789abcdef") || strings.Count(out.String(), "EXPIRED") != 1 {
		t.Errorf("the table shows a lock token:\n%s", out.String())
	}
}

// -o json and -o yaml print a v1 List.
func TestPrintLocksList(t *testing.T) {
	ls := listLocks(t, "shop")
	var out bytes.Buffer
	if err := PrintLocks(&out, ls, PrintOptions{Output: "json"}, now); err != nil {
		t.Fatal(err)
	}
	var back List[Lock]
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || len(back.Items) != 4 || back.APIVersion != "v1" || back.Kind != "List" {
		t.Errorf("json: %v, %+v\n%s", err, back, out.String())
	}
	out.Reset()
	if err := PrintLocks(&out, ls, PrintOptions{Output: "yaml"}, now); err != nil {
		t.Fatal(err)
	}
	back = List[Lock]{}
	if err := yaml.Unmarshal(out.Bytes(), &back); err != nil || len(back.Items) != 4 || back.Kind != "List" {
		t.Errorf("yaml: %v, %+v\n%s", err, back, out.String())
	}
	out.Reset()
	if err := PrintLocks(&out, nil, PrintOptions{}, now); err != nil || !strings.Contains(out.String(), "No locks found.") {
		t.Errorf("empty: %v %q", err, out.String())
	}
}

func TestPrintDenials(t *testing.T) {
	ds := []Denial{{Time: now.Add(-time.Minute), Namespace: "shop", Regarding: "RemediationRequest/rr-2", Reason: "ResourceBusy",
		Target: "shop/Deployment/checkout", Holder: "shop/wfe-1", WorkflowExecution: "shop/wfe-2", Count: 2, Message: "busy"}}
	var out bytes.Buffer
	if err := PrintDenials(&out, ds, PrintOptions{Output: "wide"}, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"LAST SEEN", "60s", "ResourceBusy", "shop/wfe-1", "RemediationRequest/rr-2", "MESSAGE", "busy"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("wide table lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := PrintDenials(&out, []Denial{}, PrintOptions{Output: "json"}, now); err != nil || !strings.Contains(out.String(), `"items": []`) {
		t.Errorf("empty json: %v %q", err, out.String())
	}
}

// Every subcommand takes kubectl's flags and documents its own.
func TestHelp(t *testing.T) {
	for args, want := range map[string][]string{
		"locks --help":        {"--all-namespaces", "-A", "--target-namespace", "--output", "-o", "--no-headers", "--namespace", "--context", "--kubeconfig"},
		"denials --help":      {"--all-namespaces", "--target", "--since", "--chunk-size", "(default 500)", "--output", "json", "yaml", "wide", "name", "--no-headers", "--context", "--kubeconfig"},
		"version --help":      {"--client", "--output", "--namespace"},
		"--help":              {"Exit codes", "-n (--namespace) is the namespace of what a command reads"},
		"certs verify --help": {"--release", "--webhook-configuration", "--secret", "--certificate", "--min-validity", "--dry-run-create", "--dry-run-namespace", "--output", "--namespace", "--wait", "--interval", "(default 5s)"},
	} {
		var out bytes.Buffer
		cmd := NewCommand(genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &out})
		cmd.SetArgs(strings.Fields(args))
		if err := cmd.Execute(); err != nil {
			t.Fatalf("%s: %v", args, err)
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s does not mention %s", args, w)
			}
		}
	}
	for _, args := range []string{"locks stray", "locks -o xml", "denials -o table", "certs verify extra"} {
		cmd := NewCommand(genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
		cmd.SetArgs(append(strings.Fields(args), "--kubeconfig", "/nonexistent"))
		if err := cmd.Execute(); err == nil {
			t.Errorf("%q was accepted", args)
		}
	}
}

// EXPIRY reads as the holder lives it, and EXPIRED marks only what is stale.
func TestExpiry(t *testing.T) {
	renewed := now.Add(-3 * time.Second)
	for _, tc := range []struct {
		l    Lock
		want string
	}{
		{Lock{State: "Locked", Renewed: renewed, Expires: renewed.Add(30 * time.Second)}, "renewed 3s ago, expires in 27s"},
		{Lock{State: "Locked", Renewed: now.Add(-time.Minute), Expires: now.Add(-30 * time.Second)}, "EXPIRED 30s ago"},
		{Lock{State: "Claimed", Phase: "Running", Expires: now.Add(-time.Hour)}, "until the WFE ends"},
		{Lock{State: "Claimed", Phase: "NotFound", Expires: now.Add(20 * time.Second)}, "grace ends in 20s"},
		{Lock{State: "Claimed", Phase: "NotFound", Expires: now.Add(-5 * time.Second)}, "EXPIRED 5s ago"},
	} {
		if got := expiry(tc.l, now); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.l, got, tc.want)
		}
	}
}
