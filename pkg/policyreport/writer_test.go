package policyreport_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/targetlock/targetlock/pkg/policyreport"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// withCRD is a control plane with the Report CRD installed (testdata).
var withCRD = testenv.Fixture[*testenv.Env]{Start: func() (*testenv.Env, func() error, error) {
	env, err := testenv.Start(testenv.Options{CRDPaths: []string{filepath.Join("testdata", "openreports.io_reports.yaml")}})
	if err != nil {
		return nil, nil, err
	}
	return env, env.Stop, nil
}}

func newNamespace(t *testing.T, c client.Client) string {
	t.Helper()
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "rep-"}}
	if err := c.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	return n.Name
}

// start runs w until the test ends.
func start(t *testing.T, ctx context.Context, w *policyreport.Writer) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = w.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func outcome(o string) float64 {
	families, _ := metrics.Registry.Gather()
	for _, mf := range families {
		if mf.GetName() != "targetlock_webhook_policy_report_results_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == o {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func entry(ns string, i int, tgt string, warned bool) policyreport.Entry {
	return policyreport.Entry{
		Time: time.Unix(1_800_000_000+int64(i), 0), Namespace: ns, WorkflowExecution: fmt.Sprintf("wfe-%d", i),
		UID: "uid", APIVersion: "targetlock.io/v1alpha1", Reason: "ResourceBusy", Target: tgt,
		Holder: ns + "/owner", Requester: "alice", Message: "ResourceBusy: busy", Warned: warned,
	}
}

func getReport(t *testing.T, c client.Client, ns string) (*unstructured.Unstructured, error) {
	t.Helper()
	r := &unstructured.Unstructured{}
	r.SetGroupVersionKind(policyreport.GroupVersionKind)
	return r, c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: policyreport.Name}, r)
}

// TestFloodStaysBounded: 500 refusals of 150 targets, 10 of them warned,
// make one Report of the 100 most recent results, repeats counted, with
// the summary of what it holds.
func TestFloodStaysBounded(t *testing.T) {
	env := withCRD.Get(t)
	ctx := context.Background()
	ns := newNamespace(t, env.Client)
	w := policyreport.NewWriter(env.Client, nil)
	for i := range 500 {
		k := i % 150
		w.Record(entry(ns, i, fmt.Sprintf("%s/Deployment.apps/app-%d", ns, k), k >= 140))
	}
	start(t, ctx, w)
	var ds []policyreport.Denial
	testenv.Eventually(t, 20*time.Second, func() error {
		var err error
		ds, err = policyreport.List(ctx, env.Client, ns)
		if err == nil && len(ds) != policyreport.MaxResults {
			err = fmt.Errorf("%d results, want %d", len(ds), policyreport.MaxResults)
		}
		return err
	})
	r, err := getReport(t, env.Client, ns)
	if err != nil {
		t.Fatal(err)
	}
	fail, _, _ := unstructured.NestedInt64(r.Object, "summary", "fail")
	warn, _, _ := unstructured.NestedInt64(r.Object, "summary", "warn")
	if fail != 90 || warn != 10 || r.Object["source"] != policyreport.Source {
		t.Errorf("summary fail=%d warn=%d source=%v, want 90, 10, %s", fail, warn, r.Object["source"], policyreport.Source)
	}
	checkFlood(t, ns, ds)
}

// checkFlood: newest first, app-49's last refusal, its 4th; of the 150
// targets, app-0..49 (refused 4 times) and app-100..149 (3 times) stay,
// warned from app-140.
func checkFlood(t *testing.T, ns string, ds []policyreport.Denial) {
	t.Helper()
	want := policyreport.Denial{Time: time.Unix(1_800_000_499, 0), Namespace: ns, WorkflowExecution: "wfe-499",
		Target: ns + "/Deployment.apps/app-49", Reason: "ResourceBusy", Holder: ns + "/owner", Requester: "alice",
		Count: 4, Result: policyreport.ResultFail, Message: "ResourceBusy: busy"}
	if first := ds[0]; first != want {
		t.Errorf("newest result %+v, want %+v", first, want)
	}
	for _, d := range ds {
		k, err := strconv.Atoi(d.Target[strings.LastIndex(d.Target, "-")+1:])
		want := 3
		if k < 50 {
			want = 4
		}
		if err != nil || (k >= 50 && k < 100) || d.Count != want || (d.Result == policyreport.ResultWarn) != (k >= 140) {
			t.Errorf("result %+v: want app-0..49 (count 4) and app-100..149 (count 3), warn from app-140", d)
		}
	}
}

// TestHostileReport: a Report a tenant wrote first under the Writer's
// name, with results of another source, counts that are not a number or
// would overflow, 100 results dated in year 9999 and a scope naming
// another namespace, neither stops the Writer nor makes it write anywhere
// but the refusal's namespace; foreign results are dropped, the forged
// future ones pushed out first, the real ones kept.
func TestHostileReport(t *testing.T) {
	env := withCRD.Get(t)
	ctx := context.Background()
	ns, victim := newNamespace(t, env.Client), newNamespace(t, env.Client)
	forged := []any{map[string]any{"source": "mallory", "policy": "fake", "result": "fail", "message": "forged"}}
	// 100 results of ours dated in year 9999, to push real ones out.
	for i := range policyreport.MaxResults {
		forged = append(forged, map[string]any{"source": policyreport.Source, "policy": policyreport.Policy, "rule": "Forged", "result": "fail",
			"timestamp":  map[string]any{"seconds": int64(253402300000), "nanos": int64(0)},
			"properties": map[string]any{"target": fmt.Sprintf("forged-%d", i)}})
	}
	// x's and y's bad counts come last, the newest writes: however the
	// Writer batches x and y, writing one keeps the other's result (the
	// Report keeps the MaxResults last written).
	forged = append(forged,
		map[string]any{"source": policyreport.Source, "policy": policyreport.Policy, "rule": "ResourceBusy", "result": "fail",
			"properties": map[string]any{"target": ns + "/Deployment.apps/x", "requester": "alice", "count": "many"}},
		map[string]any{"source": policyreport.Source, "policy": policyreport.Policy, "rule": "ResourceBusy", "result": "fail",
			"properties": map[string]any{"target": ns + "/Deployment.apps/y", "requester": "alice", "count": "9223372036854775807"}})
	hostile := &unstructured.Unstructured{Object: map[string]any{
		"scope":   map[string]any{"kind": "Namespace", "name": victim},
		"results": forged,
		"summary": map[string]any{"fail": int64(1000)},
	}}
	hostile.SetGroupVersionKind(policyreport.GroupVersionKind)
	hostile.SetNamespace(ns)
	hostile.SetName(policyreport.Name)
	if err := env.Client.Create(ctx, hostile); err != nil {
		t.Fatal(err)
	}
	w := policyreport.NewWriter(env.Client, nil)
	start(t, ctx, w)
	// x is written before y is recorded: two batches, the order that
	// pushes out the oldest results between them.
	w.Record(entry(ns, 1, ns+"/Deployment.apps/x", false))
	testenv.Eventually(t, 20*time.Second, func() error {
		ds, err := policyreport.List(ctx, env.Client, ns)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(ds, func(d policyreport.Denial) bool { return d.Target == ns+"/Deployment.apps/x" && d.Count == 2 }) {
			return fmt.Errorf("x not written yet")
		}
		return nil
	})
	w.Record(entry(ns, 2, ns+"/Deployment.apps/y", false))
	testenv.Eventually(t, 20*time.Second, func() error {
		ds, err := policyreport.List(ctx, env.Client, ns)
		if err != nil {
			return err
		}
		counts := map[string]int{}
		for _, d := range ds {
			counts[d.Target] = d.Count
		}
		if len(ds) != policyreport.MaxResults || counts[ns+"/Deployment.apps/x"] != 2 || counts[ns+"/Deployment.apps/y"] != 1<<30 {
			return fmt.Errorf("%d results, counts x=%d y=%d: want %d, ours kept, x counted twice, y's count bounded",
				len(ds), counts[ns+"/Deployment.apps/x"], counts[ns+"/Deployment.apps/y"], policyreport.MaxResults)
		}
		return nil
	})
	r, _ := getReport(t, env.Client, ns)
	if fail, _, _ := unstructured.NestedInt64(r.Object, "summary", "fail"); fail != policyreport.MaxResults {
		t.Errorf("summary.fail = %d, want %d", fail, policyreport.MaxResults)
	}
	all, err := policyreport.List(ctx, env.Client, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range all {
		if d.Namespace == victim {
			t.Errorf("a result was written in %s: %+v", victim, d)
		}
	}
}

// TestReplicasCount: two Writers (two webhook replicas) recording the
// same refusal into one Report at once lose none of it: each write is a
// compare-and-swap on the Report, and a lost one reads again.
func TestReplicasCount(t *testing.T) {
	env := withCRD.Get(t)
	ctx := context.Background()
	ns := newNamespace(t, env.Client)
	a, b := policyreport.NewWriter(env.Client, nil), policyreport.NewWriter(env.Client, nil)
	start(t, ctx, a)
	start(t, ctx, b)
	for i := range 100 {
		w := map[bool]*policyreport.Writer{true: a, false: b}[i%2 == 0]
		w.Record(entry(ns, i, ns+"/Deployment.apps/x", false))
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		ds, err := policyreport.List(ctx, env.Client, ns)
		if err == nil && (len(ds) != 1 || ds[0].Count != 100) {
			err = fmt.Errorf("results %+v, want one counted 100 times", ds)
		}
		return err
	})
}

// TestCRDAbsent: without the Report CRD the Writer drops its entries,
// counted, logs that once, and asks the API server again only after a
// minute.
func TestCRDAbsent(t *testing.T) {
	env := testenv.Shared(t)
	var (
		mu   sync.Mutex
		logs []string
	)
	ctx := logf.IntoContext(context.Background(), funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, prefix+" "+args)
	}, funcr.Options{Verbosity: 1}))
	clk := clocktesting.NewFakeClock(time.Now())
	w := policyreport.NewWriter(env.Client, clk)
	start(t, ctx, w)
	before := outcome(policyreport.OutcomeNotInstalled)
	for round := range 3 {
		for i := range 3 {
			w.Record(entry("default", i, "default/Deployment.apps/x", false))
		}
		want := before + float64(3*(round+1))
		testenv.Eventually(t, 20*time.Second, func() error {
			if got := outcome(policyreport.OutcomeNotInstalled); got != want {
				return fmt.Errorf("dropped_not_installed %v, want %v", got, want)
			}
			return nil
		})
		clk.Step(2 * time.Minute)
	}
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(strings.Join(logs, "\n"), "Not writing Policy Reports"); n != 1 || len(logs) != 1 {
		t.Errorf("want one log line saying the CRD is absent, got %d:\n%s", n, strings.Join(logs, "\n"))
	}
	if _, err := policyreport.List(ctx, env.Client, ""); err == nil || !strings.Contains(err.Error(), policyreport.ErrNotInstalled.Error()) {
		t.Errorf("List without the CRD: %v, want ErrNotInstalled", err)
	}
	mu.Unlock()

	// Installed later, the CRD is found at the next look: no restart.
	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{Paths: []string{filepath.Join("testdata", "openreports.io_reports.yaml")}}); err != nil {
		t.Fatal(err)
	}
	clk.Step(2 * time.Minute)
	testenv.Eventually(t, 30*time.Second, func() error {
		w.Record(entry("default", 7, "default/Deployment.apps/late", false))
		ds, err := policyreport.List(ctx, env.Client, "default")
		if err == nil && len(ds) == 0 {
			err = errors.New("no result yet")
		}
		return err
	})
	mu.Lock()
}

// TestQueueFullDrops: past QueueLength unwritten entries, Record drops
// and counts, never blocks.
func TestQueueFullDrops(t *testing.T) {
	w := policyreport.NewWriter(nil, nil)
	before := outcome(policyreport.OutcomeQueueFull)
	for i := range policyreport.QueueLength + 5 {
		w.Record(entry("ns", i, "ns/Deployment.apps/x", false))
	}
	if got := outcome(policyreport.OutcomeQueueFull); got != before+5 {
		t.Errorf("dropped_queue_full %v, want %v", got, before+5)
	}
}
