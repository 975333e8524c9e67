// Command bench measures targetlock on one machine: lock overhead,
// handoff, admission, throughput and cost, and safety under faults. It runs
// a real control plane (etcd + kube-apiserver built by `make tools`), the
// webhook and orchestrator binaries (`make build`) and, where a fault or a
// count must be injected, in-process replicas. It prints a markdown report,
// writes it with SVG plots to --out, and prints one `bench <section> ...`
// line per section. It exits non-zero if any target ever had two active
// WorkflowExecutions.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/internal/manager"
	"github.com/targetlock/targetlock/pkg/orchestrator"
	"github.com/targetlock/targetlock/pkg/routing"
	"github.com/targetlock/targetlock/test/framework/cluster"
	"github.com/targetlock/targetlock/test/framework/executor"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

// scale is how much each section does; --quick shrinks it.
type scale struct {
	lockSamples, handoffSamples      int
	admissionSamples, admissionBurst int
	// admissionStorm: concurrent CREATEs, ten per target, all at once.
	admissionStorm int
	// history: terminal requests run before measuring again, over how
	// many objects; requests measured one at a time in each phase.
	historySize, historyTargets, historySamples int
	throughputTargets                           int
	// memory: requests on targets, per target, all sent at once to one replica.
	memoryTargets, memoryRRsPerTarget int
	faultTargets, faultRRsPerTarget   int
	faultWindow                       time.Duration
	faultKills                        int
	throughputReplicas                []int
	// soak: contended WFE CREATEs sent, objects, one RR per soakRREvery
	// CREATEs, SIGKILLs of orchestrator processes.
	soakCreates, soakObjects, soakRREvery, soakKills int
	// fleet: one run per size in fleetReplicas, each over fleetTargets
	// with one request each, every fleetDupEvery-th target a duplicate too,
	// sent over fleetWindow, after fleetIdle without requests;
	// a tenth of the fleet (at most fleetKills) SIGKILLed, as many added.
	fleetReplicas            []int
	fleetTargets, fleetKills int
	fleetWindow, fleetIdle   time.Duration
}

var (
	full = scale{
		lockSamples: 300, handoffSamples: 60, admissionSamples: 300, admissionBurst: 1000, admissionStorm: 500,
		historySize: 10000, historyTargets: 100, historySamples: 200,
		throughputTargets: 1000, memoryTargets: 1000, memoryRRsPerTarget: 10, faultTargets: 100, faultRRsPerTarget: 8, faultWindow: 60 * time.Second, faultKills: 6,
		throughputReplicas: []int{1, 3, 5}, soakCreates: 100000, soakObjects: 18, soakRREvery: 60, soakKills: 9,
		fleetReplicas: []int{10, 25, 50}, fleetTargets: 1000, fleetKills: 10, fleetWindow: 60 * time.Second, fleetIdle: 60 * time.Second,
	}
	quick = scale{
		lockSamples: 60, handoffSamples: 15, admissionSamples: 40, admissionBurst: 150, admissionStorm: 500,
		historySize: 150, historyTargets: 30, historySamples: 12,
		throughputTargets: 60, memoryTargets: 30, memoryRRsPerTarget: 10, faultTargets: 20, faultRRsPerTarget: 5, faultWindow: 12 * time.Second, faultKills: 2,
		throughputReplicas: []int{1, 3, 5}, soakCreates: 600, soakObjects: 24, soakRREvery: 30, soakKills: 3,
		fleetReplicas: []int{10}, fleetTargets: 100, fleetKills: 2, fleetWindow: 15 * time.Second, fleetIdle: 30 * time.Second,
	}
)

// sections, in the order they run; --only picks some of them.
var sections = []string{"lock", "handoff", "admission", "history", "throughput", "memory", "faults", "fleet", "soak"}

// processArgs are testenv.FastRouting as orchestrator flags, with room for
// the bench's load; the lock and the webhook run with their defaults.
var processArgs = append(testenv.FastRoutingArgs(),
	"--max-concurrent-reconciles=4", "--kube-api-qps=500", "--kube-api-burst=1000")

// webhooksAsDeployed are the webhook flags the chart sets beside the
// orchestrator: the orchestrator hands an ended WFE's claim to the next
// request or releases it, and the webhooks do not race it for the write.
var webhooksAsDeployed = []string{"--release-claims=false"}

func main() {
	if kubeconfig := os.Getenv(bareEnv); kubeconfig != "" {
		ns := flag.String("bare-namespace", "", "the namespace the bare webhook writes its Leases in")
		flag.Parse()
		fatal(serveBare(kubeconfig, *ns))
	}
	os.Exit(bench())
}

// bench runs the sections and returns the exit code: 2 if the invariant broke.
func bench() int {
	q := flag.Bool("quick", false, "every section at small scale (under 3 minutes)")
	out := flag.String("out", "bench/report", "directory for report.md and the SVG plots")
	bin := flag.String("bin", "", "directory with the orchestrator and webhook binaries (default <repo>/bin)")
	only := flag.String("only", "", "comma-separated sections to run, of "+strings.Join(sections, ",")+" (default all); the report holds just those")
	fleetSizes := flag.String("fleet-replicas", "", "comma-separated orchestrator counts for the fleet section, one run each (default 10,25,50, or 10 with --quick)")
	flag.Parse()
	run := map[string]bool{}
	for _, name := range strings.Split(*only, ",") {
		switch {
		case name == "":
		case slices.Contains(sections, name):
			run[name] = true
		default:
			fatal(fmt.Errorf("--only: no section %q (have %s)", name, strings.Join(sections, ",")))
		}
	}
	if len(run) == 0 {
		for _, name := range sections {
			run[name] = true
		}
	}
	// The in-process replicas' errors (many injected) go to a file, not the report.
	logs, err := os.CreateTemp("", "targetlock-bench-*.log")
	if err != nil {
		fatal(err)
	}
	defer logs.Close()
	ctrl.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel), zap.WriteTo(logs)))
	progress("in-process replica logs: %s", logs.Name())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	s, mode := full, "full"
	if *q {
		s, mode = quick, "quick"
	}
	if *bin == "" {
		root, err := testenv.RepoRoot()
		if err != nil {
			fatal(err)
		}
		*bin = filepath.Join(root, "bin")
	}
	s.fleetReplicas = fleetSizesFlag(*fleetSizes, s.fleetReplicas)
	r := &report{mode: mode, started: time.Now(), ran: run}
	if err := runSections(ctx, s, *bin, r); err != nil {
		fatal(err)
	}
	r.elapsed = time.Since(r.started)
	if err := r.write(os.Stdout, *out); err != nil {
		fatal(err)
	}
	if broken := r.invariantBroken(); broken != "" {
		fmt.Fprintln(os.Stderr, "bench: INVARIANT BROKEN: "+broken)
		return 2
	}
	if r.soak.duplicates != 0 || r.soak.stuck() != 0 {
		fmt.Fprintf(os.Stderr, "bench: SOAK FAILED: %d duplicate(s) (%s), %d stuck\n", r.soak.duplicates, r.soak.worst, r.soak.stuck())
		return 2
	}
	return 0
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// runSections plays the sections r.ran names: 1-3 on one control plane
// with two webhook processes, each throughput run, the faults and the soak
// on their own.
func runSections(ctx context.Context, s scale, bin string, r *report) error {
	if err := runShared(ctx, s, bin, r); err != nil {
		return err
	}
	// Each section fills its part of r and returns its figure lines.
	own := []struct {
		name string
		run  func() ([]string, error)
	}{
		{"history", func() (_ []string, err error) {
			r.history, err = benchHistory(ctx, bin, s)
			return []string{r.history.line(), r.history.budgetLine()}, err
		}},
		{"throughput", func() (lines []string, _ error) {
			for _, n := range s.throughputReplicas {
				t, err := runThroughput(ctx, bin, fmt.Sprintf("throughput-%d", n), n, s.throughputTargets, 1)
				if err != nil {
					return nil, err
				}
				r.throughput = append(r.throughput, t)
				lines = append(lines, t.line())
			}
			return lines, nil
		}},
		{"memory", func() (_ []string, err error) {
			r.memory, err = runThroughput(ctx, bin, "memory", 1, s.memoryTargets, s.memoryRRsPerTarget)
			return []string{r.memory.memoryLine()}, err
		}},
		{"faults", func() (_ []string, err error) {
			r.faults, err = benchFaults(ctx, bin, s)
			return []string{r.faults.line()}, err
		}},
		{"fleet", func() (lines []string, _ error) {
			for _, n := range s.fleetReplicas {
				f, err := benchFleet(ctx, bin, s, n)
				if err != nil {
					// A size the machine cannot carry is a point on the
					// curve, not the end of the bench.
					progress("fleet of %d: %v", n, err)
					f.failed = err.Error()
				}
				r.fleet = append(r.fleet, f)
				lines = append(lines, f.line())
			}
			return lines, nil
		}},
		{"soak", func() (_ []string, err error) {
			r.soak, err = benchSoak(ctx, bin, s)
			return []string{r.soak.line()}, err
		}},
	}
	for _, sec := range own {
		if !r.ran[sec.name] {
			continue
		}
		lines, err := sec.run()
		if err != nil {
			return fmt.Errorf("%s: %w", sec.name, err)
		}
		for _, l := range lines {
			fmt.Println(l)
		}
	}
	return nil
}

// runShared plays sections 1-3, those --only picked, on one control plane.
func runShared(ctx context.Context, s scale, bin string, r *report) error {
	if !r.ran["lock"] && !r.ran["handoff"] && !r.ran["admission"] {
		return nil
	}
	progress("starting control plane and 2 webhook processes")
	c, err := cluster.Start(ctx, cluster.Options{Webhooks: 2, BinDir: bin, Direct: *webhookDirect, WebhookArgs: webhooksAsDeployed})
	if err != nil {
		return err
	}
	err = func() error {
		defer func() { _ = c.Stop() }()
		if r.ran["lock"] {
			if r.lock, err = benchLock(ctx, c, s); err != nil {
				return fmt.Errorf("lock overhead: %w", err)
			}
			fmt.Println(r.lock.line())
		}
		if r.ran["handoff"] {
			if r.handoff, err = benchHandoff(ctx, c, s); err != nil {
				return fmt.Errorf("handoff: %w", err)
			}
			fmt.Println(r.handoff.line())
		}
		if r.ran["admission"] {
			if r.admission, err = benchAdmission(ctx, c, s); err != nil {
				return fmt.Errorf("admission: %w", err)
			}
			fmt.Println(r.admission.line())
		}
		return nil
	}()
	return err
}

// runThroughput runs benchThroughput on a fresh control plane with two
// webhook processes: objects left by earlier runs would change its figures.
func runThroughput(ctx context.Context, bin, ns string, replicas, targets, perTarget int) (throughputResult, error) {
	progress("%s: starting control plane and 2 webhook processes", ns)
	c, err := cluster.Start(ctx, cluster.Options{Webhooks: 2, BinDir: bin})
	if err != nil {
		return throughputResult{}, err
	}
	defer func() { _ = c.Stop() }()
	t, err := benchThroughput(ctx, c, bin, ns, replicas, targets, perTarget)
	if err != nil {
		return t, fmt.Errorf("%s with %d replicas: %w", ns, replicas, err)
	}
	return t, nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// fastConfig is cfg without client-side rate limits: the harness and the
// in-process replicas measure the protocol, not client-go's throttle.
func fastConfig(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 1000, 2000
	return cfg
}

func newNamespace(ctx context.Context, c client.Client, name string) error {
	return c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
}

// replica is one in-process orchestrator: its own manager, cache and
// identity, watching only namespaces (all when empty).
type replica struct {
	name       string
	namespaces []string
	opts       orchestrator.Options
	newClient  client.NewClientFunc
	// transport, if set, wraps every API request of the replica (counting).
	transport func(http.RoundTripper) http.RoundTripper
	// trace, if set, timestamps the replica's requests, reconciles and
	// events (instead of transport).
	trace *tracer
}

// start runs the replica until the returned stop is called.
func (rp replica) start(ctx context.Context, env *testenv.Env) (stop func(), err error) {
	co := manager.CacheOptions(cluster.LeaseNamespace)
	if len(rp.namespaces) > 0 {
		co.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range rp.namespaces {
			co.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	mo := env.ManagerOptions()
	mo.Cache, mo.NewClient = co, rp.newClient
	cfg := fastConfig(env.Config)
	cfg.WrapTransport = rp.transport
	if rp.trace != nil {
		cfg.WrapTransport, mo.Logger = rp.trace.wrap, rp.trace.logger(ctrl.Log)
	}
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		return nil, err
	}
	if rp.trace != nil {
		if err := rp.trace.watch(ctx, mgr); err != nil {
			return nil, err
		}
	}
	o := rp.opts
	o.LeaseNamespace, o.Identity, o.SkipNameValidation = cluster.LeaseNamespace, rp.name, true
	// A replica watching only some namespaces decides every object in them:
	// off the ring, which would hand some of them to replicas not watching.
	o.DisableRing = o.DisableRing || len(rp.namespaces) > 0
	if o.Routing == (routing.Options{}) {
		o.Routing = testenv.FastRouting
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if err := orchestrator.Setup(ctx, mgr, o); err != nil {
		return nil, err
	}
	return runManager(ctx, mgr), nil
}

// startReplicas starts each replica; stop stops those started.
func startReplicas(ctx context.Context, env *testenv.Env, rps ...replica) (stop func(), err error) {
	var stops []func()
	stop = func() {
		for _, s := range slices.Backward(stops) {
			s()
		}
	}
	for _, rp := range rps {
		s, err := rp.start(ctx, env)
		if err != nil {
			stop()
			return nil, err
		}
		stops = append(stops, s)
	}
	return stop, nil
}

// startExecutor plays the workflow engine in the given namespaces.
func startExecutor(ctx context.Context, env *testenv.Env, delay time.Duration, namespaces ...string) (func(), error) {
	return runExecutor(ctx, env, "executor", executor.Executor{Delay: delay}, namespaces)
}

// runExecutor runs ex, on a manager of its own that caches only the given
// namespaces, until the returned stop is called.
func runExecutor(ctx context.Context, env *testenv.Env, name string, ex executor.Executor, namespaces []string) (func(), error) {
	co := cache.Options{DefaultNamespaces: map[string]cache.Config{}}
	for _, ns := range namespaces {
		co.DefaultNamespaces[ns] = cache.Config{}
	}
	mo := env.ManagerOptions()
	mo.Cache = co
	mgr, err := ctrl.NewManager(fastConfig(env.Config), mo)
	if err != nil {
		return nil, err
	}
	ex.Client = mgr.GetClient()
	if err := ex.Setup(mgr, name); err != nil {
		return nil, err
	}
	return runManager(ctx, mgr), nil
}

func runManager(ctx context.Context, mgr ctrl.Manager) func() {
	stop := testenv.StartManager(ctx, mgr)
	return func() {
		if err := stop(); err != nil {
			progress("manager: %v", err)
		}
	}
}

// watchAndClient is what a section measures with: a watch of WFE arrivals
// and a client without client-side rate limits for the harness's requests.
func watchAndClient(ctx context.Context, env *testenv.Env) (*arrivals, client.Client, error) {
	arr, err := watchArrivals(ctx, env.Config, env)
	if err != nil {
		return nil, nil, err
	}
	api, err := client.New(fastConfig(env.Config), client.Options{Scheme: env.Scheme})
	return arr, api, err
}

// arrivals records when this process first received each WFE (by
// "namespace/name") from a watch: a WFE's creationTimestamp has only
// whole seconds.
type arrivals struct {
	mu      sync.Mutex
	at      map[string]time.Time
	waiters map[string]chan struct{}
}

func watchArrivals(ctx context.Context, cfg *rest.Config, env *testenv.Env) (*arrivals, error) {
	wc, err := client.NewWithWatch(fastConfig(cfg), client.Options{Scheme: env.Scheme})
	if err != nil {
		return nil, err
	}
	a := &arrivals{at: map[string]time.Time{}, waiters: map[string]chan struct{}{}}
	list := &v1alpha1.WorkflowExecutionList{}
	if err := wc.List(ctx, list); err != nil {
		return nil, err
	}
	rv := list.ResourceVersion
	go func() {
		for ctx.Err() == nil {
			w, err := wc.Watch(ctx, &v1alpha1.WorkflowExecutionList{}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: rv}})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				wfe, ok := ev.Object.(*v1alpha1.WorkflowExecution)
				if !ok {
					continue
				}
				rv = wfe.ResourceVersion
				if ev.Type == watch.Added {
					a.add(wfe.Namespace+"/"+wfe.Name, time.Now())
				}
			}
		}
	}()
	return a, nil
}

func (a *arrivals) add(id string, t time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.at[id]; ok {
		return
	}
	a.at[id] = t
	if ch, ok := a.waiters[id]; ok {
		close(ch)
	}
}

// wait returns when id arrived, or false after timeout.
func (a *arrivals) wait(ctx context.Context, id string, timeout time.Duration) (time.Time, bool) {
	a.mu.Lock()
	if t, ok := a.at[id]; ok {
		a.mu.Unlock()
		return t, true
	}
	ch, ok := a.waiters[id]
	if !ok {
		ch = make(chan struct{})
		a.waiters[id] = ch
	}
	a.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(timeout):
		return time.Time{}, false
	case <-ctx.Done():
		return time.Time{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.at[id], true
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
