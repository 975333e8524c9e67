// Package adversarial tries, against a real API server with the webhook and
// orchestrator binaries running, every way a careless or hostile writer
// could get two active WorkflowExecutions for one object: other spellings,
// other namespaces, status writes, refusals for other reasons, lost
// responses. Each case is a subtest; the suite ends with one line:
//
//	adversarial: cases=N passed=N max_active_per_object=1 delete_frees_p95_ms=...
//
// The checker keys objects by what each case knows by construction (every
// object here has a distinct name), never through pkg/target.
package adversarial_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/test/framework/cluster"
	"github.com/targetlock/targetlock/test/framework/executor"
	"github.com/targetlock/targetlock/test/framework/invariant"
	"github.com/targetlock/targetlock/test/framework/testenv"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

// runParam marks the WFEs the simulated executor runs; the others stay
// Pending until a case moves them.
const runParam = "adversarial-run"

var (
	c       *cluster.Cluster
	api     client.Client
	watcher *invariant.Watcher
)

func TestMain(m *testing.M) { testenv.Main(m) }

// suite is the cluster every case runs against: two orchestrator and two
// webhook processes, the invariant's watch, and the simulated executor.
var suite = testenv.Fixture[*cluster.Cluster]{Start: func() (*cluster.Cluster, func() error, error) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	ctx, cancel := context.WithCancel(context.Background())
	root, err := testenv.RepoRoot()
	if err != nil {
		cancel()
		return nil, nil, err
	}
	c, err := cluster.Start(ctx, cluster.Options{
		Orchestrators: 2, Webhooks: 2, BinDir: filepath.Join(root, "bin"),
		OrchestratorArgs: []string{"--recently-remediated-cooldown=1ms", "--backoff-base=10ms", "--backoff-max=50ms", "--sweep-interval=2s",
			"--trusted-namespaces=" + opsA + "," + opsB},
	})
	stopMgr := func() error { return nil }
	stop := func() error {
		cancel()
		err := stopMgr()
		if c != nil {
			err = errors.Join(err, c.Stop())
		}
		return err
	}
	if err != nil {
		return nil, stop, err
	}
	api = c.Env.Client
	wc, err := client.NewWithWatch(c.Env.Config, client.Options{Scheme: c.Env.Scheme})
	if err != nil {
		return nil, stop, err
	}
	if watcher, err = invariant.Watch(ctx, wc, invariant.ByName); err != nil {
		return nil, stop, err
	}
	mgr, err := ctrl.NewManager(c.Env.Config, c.Env.ManagerOptions())
	if err != nil {
		return nil, stop, err
	}
	ex := &executor.Executor{Client: mgr.GetClient(), Delay: 100 * time.Millisecond,
		Select: func(w *v1alpha1.WorkflowExecution) bool { return w.Spec.Parameters[runParam] == "yes" }}
	if err := ex.Setup(mgr, "executor"); err != nil {
		return nil, stop, err
	}
	stopMgr = testenv.StartManager(ctx, mgr)
	return c, stop, nil
}}

// TestAdversarial runs every case and prints the summary line.
func TestAdversarial(t *testing.T) {
	c = suite.Get(t)
	passed := 0
	for _, tc := range cases {
		if t.Run(tc.name, tc.run) {
			passed++
		}
	}
	maxActive, worst := watcher.MaxActive()
	if err := watcher.Err(); err != nil {
		t.Errorf("the invariant's watch: %v", err)
		maxActive = -1
	}
	if maxActive != 1 {
		t.Errorf("max active WFEs per object = %d (%s)", maxActive, worst)
	}
	fmt.Printf("adversarial: cases=%d passed=%d max_active_per_object=%d delete_frees_p95_ms=%d\n",
		len(cases), passed, maxActive, p95(deleteFrees).Milliseconds())
}

type adversarialCase struct {
	name string
	run  func(t *testing.T)
}

// newNamespace creates a namespace for one case.
func newNamespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "adv-", Labels: labels}}
	if err := api.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	return n.Name
}

// runRR is a request whose WFE the simulated executor runs.
func runRR(ns, name string) *wrappers.RRWrapper {
	return wrappers.MakeRR(ns, name).Parameter(runParam, "yes")
}

// denialReason is the reason of a refusal by the targetlock webhook, as its
// message starts ("...denied the request: <Reason>: ..."), or "".
func denialReason(err error) string {
	const marker = "denied the request: "
	msg := err.Error()
	i := strings.Index(msg, marker)
	if i < 0 {
		return ""
	}
	reason, _, _ := strings.Cut(msg[i+len(marker):], ":")
	return reason
}

// storm creates every WFE at the same instant and returns the admitted
// ones and the refusal reasons.
func storm(t *testing.T, wfes []*v1alpha1.WorkflowExecution) (admitted []string, reasons map[string]int) {
	t.Helper()
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	reasons = map[string]int{}
	start := make(chan struct{})
	for _, w := range wfes {
		wg.Go(func() {
			<-start
			err := api.Create(context.Background(), w)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				admitted = append(admitted, w.Namespace+"/"+w.Name)
				return
			}
			r := denialReason(err)
			if r == "" {
				r = "other: " + err.Error()
			}
			reasons[r]++
		})
	}
	close(start)
	wg.Wait()
	return admitted, reasons
}

// busyReasons are the webhook's refusals of a CREATE for an owned object.
var busyReasons = []string{"ResourceBusy", "ClaimPending", "Contended", "LockHeld"}

func onlyBusy(t *testing.T, reasons map[string]int) {
	t.Helper()
	for r, n := range reasons {
		if !slices.Contains(busyReasons, r) {
			t.Errorf("%d CREATEs refused for %q, want only %v", n, r, busyReasons)
		}
	}
}

func rrPhase(ns, name string) (*v1alpha1.RemediationRequest, error) {
	rr := &v1alpha1.RemediationRequest{}
	return rr, api.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, rr)
}

// setPhase writes a WFE's status phase.
func setPhase(ns, name string, phase v1alpha1.WorkflowExecutionPhase) error {
	w := &v1alpha1.WorkflowExecution{}
	if err := api.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, w); err != nil {
		return err
	}
	w.Status.Phase = phase
	return api.Status().Update(context.Background(), w)
}

func isRefusedAsInvalid(err error) bool {
	var st apierrors.APIStatus
	return errors.As(err, &st) && st.Status().Code >= 400 && st.Status().Code < 500
}

func p95(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)*95+99)/100-1]
}
