package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The kubernaut phase installs the chart's kubernaut profile the way
// docs/operations.md tells a kubernaut operator to (every command of that
// section is run here), over CRDs written from kubernaut's schema, and
// storms WFE CREATEs from kubernaut-system as kubernaut's RO ServiceAccount.
const (
	kubernautNS     = "kubernaut-system"
	kubernautTarget = "payment" // the namespace the storm's objects live in
	roSA            = "remediationorchestrator-controller"
	weSA            = "workflowexecution-controller"
	gatewaySA       = "gateway"
	recipeSection   = "## Adopting an existing kubernaut cluster"
)

var (
	kubernautWFE = schema.GroupVersionKind{Group: "kubernaut.ai", Version: "v1alpha1", Kind: "WorkflowExecution"}
	kubernautRR  = schema.GroupVersionKind{Group: "kubernaut.ai", Version: "v1alpha1", Kind: "RemediationRequest"}
)

type kubernautResult struct {
	maxActive       int
	statusUntouched bool
	admitted        int64
	denied          int64
	worst           string
}

// kubernautMode runs the whole phase: CRDs and kubernaut's identities, a
// WFE stored before the install, the recipe, the storm, the checks, and
// the uninstall. It returns what the summary line reports.
func (e *e2e) kubernautMode(ctx context.Context) (kubernautResult, error) {
	res := kubernautResult{}
	step("kubernaut profile: kubernaut-schema CRDs and ServiceAccounts")
	if err := e.applyCRDs(ctx, e.kubernautCRDs); err != nil {
		return res, err
	}
	if err := e.applyCRDs(ctx, e.reportCRDs); err != nil { // as Kyverno installs them
		return res, err
	}
	if err := e.kubernautIdentities(ctx); err != nil {
		return res, err
	}
	ro := e.as(roSA)
	rrStatus, err := e.kubernautRequests(ctx, e.as(gatewaySA), ro)
	if err != nil {
		return res, err
	}
	ch, err := e.watchKubernaut(ctx)
	if err != nil {
		return res, err
	}
	before, err := e.kubernautInstall(ctx, ro, ch)
	if err != nil {
		return res, err
	}

	step("kubernaut profile: storm from kubernaut-system as the RO's ServiceAccount")
	e.kubernautStorm(ctx, ch, before.GetName(), &res)
	if err := e.waitClaimsReleased(ctx); err != nil {
		return res, err
	}
	res.maxActive, res.worst = ch.result()
	if err := ch.failure(); err != nil {
		return res, err
	}
	// Nothing of kubernaut's RRs was written by targetlock.
	if res.statusUntouched, err = e.kubernautStatusUntouched(ctx, rrStatus); err != nil {
		return res, err
	}
	step(fmt.Sprintf("kubernaut storm: admitted=%d denied=%d max_active_per_object=%d status_untouched=%v",
		res.admitted, res.denied, res.maxActive, res.statusUntouched))
	if err := e.kubectlPlugin(ctx, nil, "locks", "-A"); err != nil {
		return res, fmt.Errorf("locks: %w", err)
	}
	return res, nil
}

// kubernautRequests creates one request per object as the Gateway; the
// RO then writes its status. It returns each request's status, which the
// checks compare at the end.
func (e *e2e) kubernautRequests(ctx context.Context, gw, ro client.Client) (map[string]map[string]any, error) {
	rrStatus := map[string]map[string]any{}
	for i := range e.objects {
		rr := kubernautRequest(i)
		if err := gw.Create(ctx, rr); err != nil {
			return nil, fmt.Errorf("creating RR as kubernaut's Gateway: %w", err)
		}
		status := map[string]any{
			"overallPhase":  "Executing",
			"routingStatus": map[string]any{"consecutiveFailureCount": int64(0)},
			"phaseProgress": map[string]any{"executing": map[string]any{"startedAt": "2026-12-06T00:00:00Z", "step": "workflow"}},
			"deduplication": map[string]any{"occurrenceCount": int64(2), "firstSeenAt": "2026-12-06T00:00:00Z"},
		}
		patch := &unstructured.Unstructured{Object: map[string]any{"status": status}}
		patch.SetGroupVersionKind(kubernautRR)
		patch.SetNamespace(kubernautNS)
		patch.SetName(rr.GetName())
		if err := ro.Status().Patch(ctx, patch, client.Merge); err != nil {
			return nil, fmt.Errorf("writing RR status as kubernaut's RO: %w", err)
		}
		rrStatus[rr.GetName()] = status
	}
	return rrStatus, nil
}

// kubernautInstall stores a WFE before targetlock is installed (the
// webhook must find it alone: no label, no orchestrator), runs the
// adoption recipe, and checks a second WFE for that object is refused.
// It returns the pre-install WFE.
func (e *e2e) kubernautInstall(ctx context.Context, ro client.Client, ch *kubernautChecker) (*unstructured.Unstructured, error) {
	before := kubernautExecution(0, 0, "before-install")
	ch.expect(before.GetName(), 0) // before the CREATE: its event may come first
	if err := ro.Create(ctx, before); err != nil {
		return nil, fmt.Errorf("creating the pre-install WFE: %w", err)
	}

	step("kubernaut profile: the adoption recipe of docs/operations.md")
	recipe, err := readRecipe(e.operationsDoc)
	if err != nil {
		return nil, err
	}
	for _, cmd := range recipe {
		if isUpgrade(cmd) { // the switch to enforce: warn mode was installed
			if err := e.warnMode(ctx, ch); err != nil {
				return nil, err
			}
		}
		if err := e.runRecipe(ctx, cmd); err != nil {
			return nil, fmt.Errorf("recipe %q: %w", strings.Join(cmd, " "), err)
		}
	}
	if _, err := e.waitPodsReady(ctx, 2); err != nil { // the webhook only
		return nil, err
	}
	// The pre-install WFE holds its object: a second is refused.
	second := kubernautExecution(0, 1, "after-install")
	ch.expect(second.GetName(), 0)
	if err := mustBeRefused(ro.Create(ctx, second)); err != nil {
		return nil, fmt.Errorf("a second WFE for an object busy since before the install: %w", err)
	}
	return before, nil
}

// kubernautStorm has 10 RO pods create WFEs on random objects, playing
// the WE controller for each admitted one (and, after 3s, for the
// pre-install WFE before), until every admitted WFE has completed.
func (e *e2e) kubernautStorm(ctx context.Context, ch *kubernautChecker, before string, res *kubernautResult) {
	we := e.as(weSA)
	var wg, ended sync.WaitGroup
	complete := func(name string) {
		defer ended.Done()
		sleep(ctx, e.executorDelay)
		_ = setKubernautPhase(ctx, we, name, "Running")
		sleep(ctx, e.executorDelay)
		_ = setKubernautPhase(ctx, we, name, "Completed")
	}
	ended.Add(1)
	go func() { sleep(ctx, 3*time.Second); complete(before) }()
	for pod := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := e.asPod(roSA, fmt.Sprintf("remediationorchestrator-%d", pod))
			for n := range e.rrsPerObject * e.objects / 2 {
				obj := rand.IntN(e.objects)
				w := kubernautExecution(obj, n, fmt.Sprintf("ro%d", pod))
				ch.expect(w.GetName(), obj)
				err := c.Create(ctx, w)
				switch {
				case err == nil:
					atomic.AddInt64(&res.admitted, 1)
					ended.Add(1)
					go complete(w.GetName())
				case apierrors.IsForbidden(err) || strings.Contains(err.Error(), "denied the request"):
					atomic.AddInt64(&res.denied, 1)
				default:
					fmt.Printf("    CREATE %s: %v\n", w.GetName(), err)
				}
				sleep(ctx, time.Duration(50+rand.IntN(150))*time.Millisecond)
			}
		}()
	}
	wg.Wait()
	ended.Wait()
}

// waitClaimsReleased waits until the webhook alone has released every
// claim: no target Lease left.
func (e *e2e) waitClaimsReleased(ctx context.Context) error {
	return poll(ctx, 2*time.Minute, "every claim released by the webhook alone", func(ctx context.Context) error {
		leases := &coordinationv1.LeaseList{}
		if err := e.c.List(ctx, leases, client.InNamespace(e.namespace), client.MatchingLabels{"app.kubernetes.io/managed-by": "targetlock"}); err != nil {
			return err
		}
		if n := len(leases.Items); n > 0 {
			return fmt.Errorf("%d target Leases remain", n)
		}
		return nil
	})
}

// kubernautStatusUntouched reports whether every request's status is still
// what the RO wrote, printing each that changed.
func (e *e2e) kubernautStatusUntouched(ctx context.Context, rrStatus map[string]map[string]any) (bool, error) {
	untouched := true
	for name, want := range rrStatus {
		rr := &unstructured.Unstructured{}
		rr.SetGroupVersionKind(kubernautRR)
		if err := e.c.Get(ctx, client.ObjectKey{Namespace: kubernautNS, Name: name}, rr); err != nil {
			return untouched, err
		}
		got, _, _ := unstructured.NestedMap(rr.Object, "status")
		if !reflect.DeepEqual(got, want) {
			untouched = false
			fmt.Printf("    RR %s status changed: got %v, want %v\n", name, got, want)
		}
	}
	return untouched, nil
}

// readRecipe returns the commands of the kubernaut adoption section of
// docs/operations.md: every line of its sh blocks (continuations joined).
func readRecipe(path string) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		cmds            [][]string
		in, block       bool
		line, continued string
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		text := sc.Text()
		switch {
		case strings.HasPrefix(text, "## "):
			in = text == recipeSection
			continue
		case !in:
			continue
		case strings.TrimSpace(text) == "```sh":
			block = true
			continue
		case strings.TrimSpace(text) == "```":
			block = false
			continue
		case !block:
			continue
		}
		line = continued + strings.TrimSpace(text)
		if strings.HasSuffix(line, `\`) {
			continued = strings.TrimSuffix(line, `\`) + " "
			continue
		}
		continued = ""
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.Index(line, " #"); i > 0 {
			line = strings.TrimSpace(line[:i])
		}
		cmds = append(cmds, strings.Fields(line))
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(cmds) == 0 {
		return nil, fmt.Errorf("%s: no commands under %q", path, recipeSection)
	}
	return cmds, nil
}

// runRecipe runs one command of the recipe against the e2e cluster: helm
// with the image under test and the chart under test in place of the
// recipe's package, `kubectl targetlock` through kubectl.
func (e *e2e) runRecipe(ctx context.Context, cmd []string) error {
	switch {
	case cmd[0] == "helm" && len(cmd) > 1 && (cmd[1] == "install" || cmd[1] == "upgrade"):
		args := make([]string, 0, len(cmd))
		for _, a := range cmd[1:] {
			if strings.HasSuffix(a, ".tgz") {
				args = append(args, e.chartArgs()...)
				continue
			}
			args = append(args, a)
		}
		args = append(args, "--wait", "--timeout", "5m")
		return e.helm(ctx, append(args, e.setFlags(nil)...)...)
	case cmd[0] == "helm":
		return e.helm(ctx, cmd[1:]...)
	case cmd[0] == "kubectl" && len(cmd) > 1 && cmd[1] == "targetlock":
		return e.kubectlPlugin(ctx, nil, cmd[2:]...)
	}
	return fmt.Errorf("the e2e does not know how to run %q", cmd[0])
}

// kubernautIdentities creates kubernaut's namespace, the ServiceAccounts of
// its Gateway, RO and WE controller, and RBAC as kubernaut grants them.
func (e *e2e) kubernautIdentities(ctx context.Context) error {
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kubernautNS}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: kubernautTarget}},
	}
	rules := map[string][]rbacv1.PolicyRule{
		gatewaySA: {{APIGroups: []string{"kubernaut.ai"}, Resources: []string{"remediationrequests"}, Verbs: []string{"create", "get", "list", "watch"}}},
		roSA: {
			{APIGroups: []string{"kubernaut.ai"}, Resources: []string{"remediationrequests"}, Verbs: []string{"get", "list", "watch", "patch", "update"}},
			{APIGroups: []string{"kubernaut.ai"}, Resources: []string{"remediationrequests/status"}, Verbs: []string{"get", "patch", "update"}},
			{APIGroups: []string{"kubernaut.ai"}, Resources: []string{"workflowexecutions"}, Verbs: []string{"create", "get", "list", "watch", "delete"}},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create", "get", "update", "delete"}},
		},
		weSA: {
			{APIGroups: []string{"kubernaut.ai"}, Resources: []string{"workflowexecutions"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"kubernaut.ai"}, Resources: []string{"workflowexecutions/status"}, Verbs: []string{"get", "patch", "update"}},
		},
	}
	for sa, r := range rules {
		name := "kubernaut-e2e-" + sa
		objs = append(objs,
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: kubernautNS, Name: sa}},
			&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: r},
			&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
				Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: kubernautNS, Name: sa}}})
	}
	for _, o := range objs {
		if err := e.c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// as is a client acting as kubernaut's ServiceAccount sa, as the API server
// authenticates a ServiceAccount token.
func (e *e2e) as(sa string) client.Client { return e.asPod(sa, "") }

// asPod is as, with a token bound to pod (the API server then vouches for
// the pod's name in the user's extra).
func (e *e2e) asPod(sa, pod string) client.Client {
	c, err := client.New(e.impersonating(sa, pod), client.Options{Scheme: e.scheme})
	if err != nil {
		panic(err) // only a malformed config fails here
	}
	return c
}

// impersonating is the run's config as kubernaut's ServiceAccount sa,
// from pod if given.
func (e *e2e) impersonating(sa, pod string) *rest.Config {
	cfg := rest.CopyConfig(e.cfg)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + kubernautNS + ":" + sa,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + kubernautNS, "system:authenticated"},
	}
	if pod != "" {
		cfg.Impersonate.Extra = map[string][]string{"authentication.kubernetes.io/pod-name": {pod}}
	}
	return cfg
}

// kubernautRequest is object i's RR as kubernaut's Gateway writes it.
func kubernautRequest(i int) *unstructured.Unstructured {
	rr := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"signalFingerprint": fmt.Sprintf("%064x", i+1),
			"signalName":        "KubePodCrashLooping",
			"signalType":        "prometheus",
			"severity":          "critical",
			"firingTime":        "2026-12-06T00:00:00Z",
			"receivedTime":      "2026-12-06T00:00:01Z",
			"targetType":        "kubernetes",
			"targetResource":    map[string]any{"kind": "Deployment", "name": objectName(i), "namespace": kubernautTarget},
		},
	}}
	rr.SetGroupVersionKind(kubernautRR)
	rr.SetNamespace(kubernautNS)
	rr.SetName(fmt.Sprintf("rr-%s", objectName(i)))
	return rr
}

func objectName(i int) string { return fmt.Sprintf("app-%02d", i) }

// kubernautExecution is a WFE for object i as kubernaut's RO writes it: the
// Kind as the RR has it, no group, in one of two spellings.
func kubernautExecution(i, n int, who string) *unstructured.Unstructured {
	kind := "Deployment"
	if n%2 == 1 {
		kind = "deployment"
	}
	w := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"targetResource": kubernautTarget + "/" + kind + "/" + objectName(i),
			"workflowRef": map[string]any{"workflowId": "restart-v1", "workflowName": "restart-pods-v1",
				"actionType": "RestartPod", "version": "1.0.0", "executionBundle": "quay.io/kubernaut/restart@sha256:" + strings.Repeat("0", 64)},
			"remediationRequestRef": map[string]any{"apiVersion": "kubernaut.ai/v1alpha1", "kind": "RemediationRequest",
				"name": "rr-" + objectName(i), "namespace": kubernautNS},
		},
	}}
	w.SetGroupVersionKind(kubernautWFE)
	w.SetNamespace(kubernautNS)
	w.SetName(fmt.Sprintf("we-%s-%s-%d", objectName(i), who, n))
	return w
}

func setKubernautPhase(ctx context.Context, c client.Client, name, phase string) error {
	w := &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{"phase": phase}}}
	w.SetGroupVersionKind(kubernautWFE)
	w.SetNamespace(kubernautNS)
	w.SetName(name)
	return c.Status().Patch(ctx, w, client.Merge)
}

// kubernautChecker follows every kubernaut WFE event in resourceVersion
// order and keeps the active WFEs per object, the object known by
// construction (expect) rather than from the target string.
type kubernautChecker struct {
	mu      sync.Mutex
	object  map[string]int
	active  map[int]map[types.UID]string
	max     int
	worst   string
	unknown []string
	err     error
}

func (e *e2e) watchKubernaut(ctx context.Context) (*kubernautChecker, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(kubernautWFE.GroupVersion().WithKind("WorkflowExecutionList"))
	if err := e.c.List(ctx, list, client.InNamespace(kubernautNS)); err != nil {
		return nil, err
	}
	if len(list.Items) > 0 {
		return nil, fmt.Errorf("namespace %s already has %d WFEs", kubernautNS, len(list.Items))
	}
	lw := &cache.ListWatch{WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
		l := &unstructured.UnstructuredList{}
		l.SetGroupVersionKind(list.GroupVersionKind())
		return e.c.Watch(ctx, l, client.InNamespace(kubernautNS), &client.ListOptions{Raw: &opts})
	}}
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, list.GetResourceVersion(), lw)
	if err != nil {
		return nil, err
	}
	ch := &kubernautChecker{object: map[string]int{}, active: map[int]map[types.UID]string{}}
	go func() {
		defer rw.Stop()
		for ev := range rw.ResultChan() {
			switch o := ev.Object.(type) {
			case *unstructured.Unstructured:
				ch.observe(ev.Type, o)
			case *metav1.Status:
				ch.mu.Lock()
				ch.err = fmt.Errorf("WFE watch ended: %s", o.Message)
				ch.mu.Unlock()
				return
			}
		}
	}()
	return ch, nil
}

func (ch *kubernautChecker) expect(name string, object int) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.object[name] = object
}

func (ch *kubernautChecker) observe(t watch.EventType, w *unstructured.Unstructured) {
	if t == watch.Bookmark {
		return
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	obj, ok := ch.object[w.GetName()]
	if !ok {
		ch.unknown = append(ch.unknown, w.GetName())
		return
	}
	set := ch.active[obj]
	if set == nil {
		set = map[types.UID]string{}
		ch.active[obj] = set
	}
	phase, _, _ := unstructured.NestedString(w.Object, "status", "phase")
	if t == watch.Deleted || phase == "Completed" || phase == "Failed" {
		delete(set, w.GetUID())
		return
	}
	set[w.GetUID()] = w.GetName()
	if len(set) > ch.max {
		ch.max = len(set)
		ch.worst = fmt.Sprintf("object %s: %v", objectName(obj), set)
	}
}

func (ch *kubernautChecker) result() (int, string) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.max, ch.worst
}

func (ch *kubernautChecker) failure() error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if len(ch.unknown) > 0 {
		return fmt.Errorf("WFEs the storm did not create: %v", ch.unknown)
	}
	return ch.err
}
