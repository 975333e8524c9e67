package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/test/framework/cluster"
	"github.com/targetlock/targetlock/test/framework/testenv"
	"github.com/targetlock/targetlock/test/framework/wrappers"
)

type admissionResult struct {
	// with: CREATEs carrying their identity label, as the orchestrator
	// sends them (the labelling webhook skips them); unlabelled: the same
	// through both webhooks, as a direct CREATE without the label.
	with, unlabelled, without []time.Duration
	// bareWrite, bareNone: the same CREATE through a bare webhook that
	// writes one Lease, and through one that writes nothing
	// (admission_bare.go): what any webhook with one write costs here.
	bareWrite, bareNone []time.Duration
	// Means over the one-at-a-time CREATEs through the webhook: call, the
	// API server's call of the validating webhook (its own histogram);
	// handler, the time inside the validating handler (the webhook's);
	// write, one Lease CREATE by the webhook's client (client-go's).
	call, handler, write time.Duration
	// served: the webhook server's time per call, controller-runtime's
	// controller_runtime_webhook_latency_seconds (decode, handler, encode).
	served time.Duration
	// bareCall, bareServed: the API server's call of the writing bare
	// webhook, and its time in its HTTP handler (its Lease CREATE within).
	bareCall, bareServed time.Duration
	// proxy: what the harness's proxy adds to a webhook call at P50 (0
	// when the API server calls a webhook process directly).
	proxy       time.Duration
	perSecond   float64
	concurrency int
	distinct    int
	// burst: concurrent CREATEs on few targets, and how many of them the
	// API server answered with a webhook timeout (or none at all).
	burst, burstTargets, burstTimeouts, burstAdmitted int
}

func (r admissionResult) line() string {
	w, wo, u := percentiles(r.with), percentiles(r.without), percentiles(r.unlabelled)
	return fmt.Sprintf("bench admission p50_with_ms=%.1f p99_with_ms=%.1f p50_without_ms=%.1f p99_without_ms=%.1f ratio_p50=%.2f ratio_p99=%.2f admissions_per_s=%.0f burst_creates=%d burst_timeouts=%d p50_unlabelled_ms=%.1f p99_unlabelled_ms=%.1f handler_mean_ms=%.1f webhook_call_ms=%.2f handler_besides_write_ms=%.2f lease_write_ms=%.2f floor_ratio_p50=%.2f proxy_ms=%.2f bare_write_ratio_p50=%.2f bare_none_ratio_p50=%.2f",
		w.p50, w.p99, wo.p50, wo.p99, ratio(w.p50, wo.p50), ratio(w.p99, wo.p99), r.perSecond, r.burst, r.burstTimeouts, u.p50, u.p99, ms(r.handler),
		ms(r.call), ms(r.handler-r.write), ms(r.write), r.floor(), ms(r.proxy),
		ratio(percentiles(r.bareWrite).p50, wo.p50), ratio(percentiles(r.bareNone).p50, wo.p50))
}

// floor is the P50 ratio with one Lease write added to the twin's CREATE
// and nothing else: what a claim cannot go below.
func (r admissionResult) floor() float64 {
	wo := percentiles(r.without).p50
	return ratio(wo+ms(r.write), wo)
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// benchAdmission times direct WFE CREATEs through the webhook, one at a
// time, with their identity label and without it, in turn with the same
// CREATE of a twin of the WFE resource that no webhook matches (the
// baseline: the same API server at the same moment, so a change in the
// machine's speed during the run weighs on both sides alike); then
// admissions per second (concurrent CREATEs on distinct targets) and a
// burst of concurrent CREATEs on few targets.
func benchAdmission(ctx context.Context, c *cluster.Cluster, s scale) (admissionResult, error) {
	const ns = "admission"
	env := c.Env
	res := admissionResult{concurrency: 16, distinct: s.admissionBurst, burst: s.admissionStorm, burstTargets: s.admissionStorm / 10}
	progress("admission: %d CREATEs with the webhook, %d concurrent on distinct targets, a burst of %d on %d targets, then %d without the webhook",
		s.admissionSamples, s.admissionBurst, res.burst, res.burstTargets, s.admissionSamples)
	if err := newNamespace(ctx, env.Client, ns); err != nil {
		return res, err
	}
	api, err := client.New(fastConfig(env.Config), client.Options{Scheme: env.Scheme})
	if err != nil {
		return res, err
	}
	for _, group := range []string{twinGroup, bareGroup} {
		if err := installCopy(env.Config, group); err != nil {
			return res, err
		}
	}
	bare, err := startBareWebhooks(ctx, c, ns)
	if err != nil {
		return res, err
	}
	defer bare.stop()
	ar := &admissionRun{ctx: ctx, api: api, ns: ns, res: &res, bare: bare}
	if err := ar.warmUp(); err != nil {
		return res, err
	}
	if err := ar.warmBare(); err != nil {
		return res, err
	}
	if _, err := ar.createTwin("warm-up"); err != nil {
		return res, err
	}
	if err := ar.measure(c, s.admissionSamples); err != nil {
		return res, err
	}
	if err := ar.distinct(); err != nil {
		return res, err
	}
	err = ar.burst() // before res is read: burst fills it in
	return res, err
}

// admissionRun is what the admission section's steps share.
type admissionRun struct {
	bare *bareProcess
	ctx  context.Context
	api  client.Client
	ns   string
	res  *admissionResult
}

// create times the CREATE of a direct WFE name for object, with its
// identity label if labelled.
func (ar *admissionRun) create(name, object string, labelled bool) (time.Duration, error) {
	b := directWFE(ar.ns, name, object)
	if labelled {
		b.Label(v1alpha1.TargetHashLabel, deploymentHash(ar.ns, object))
	}
	w := b.Obj()
	start := time.Now()
	err := ar.api.Create(ar.ctx, w)
	return time.Since(start), err
}

// createTwin times the CREATE of the twin of a direct WFE name.
func (ar *admissionRun) createTwin(name string) (time.Duration, error) {
	t, err := copyOf(directWFE(ar.ns, name, name).Obj(), twinGroup)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	err = ar.api.Create(ar.ctx, t)
	return time.Since(start), err
}

// oneAtATime times n CREATEs of each kind, labelled, unlabelled and twin,
// in turn.
func (ar *admissionRun) oneAtATime(n int) error {
	res := ar.res
	for i := range n {
		name := fmt.Sprintf("one-%04d", i)
		for _, step := range []struct {
			into *[]time.Duration
			do   func() (time.Duration, error)
		}{
			{&res.with, func() (time.Duration, error) { return ar.create(name+"-l", name+"-l", true) }},
			{&res.unlabelled, func() (time.Duration, error) { return ar.create(name+"-u", name+"-u", false) }},
			{&res.without, func() (time.Duration, error) { return ar.createTwin(name) }},
			{&res.bareWrite, func() (time.Duration, error) { return ar.createBare(name+"-w", "write") }},
			{&res.bareNone, func() (time.Duration, error) { return ar.createBare(name+"-n", "none") }},
		} {
			d, err := step.do()
			if err != nil {
				return fmt.Errorf("CREATE %s: %w", name, err)
			}
			*step.into = append(*step.into, d)
		}
	}
	return nil
}

// distinct measures admissions per second: res.distinct CREATEs on
// distinct targets from res.concurrency clients.
func (ar *admissionRun) distinct() error {
	res := ar.res
	var (
		next, failed atomic.Int64
		wg           sync.WaitGroup
	)
	start := time.Now()
	for range res.concurrency {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(res.distinct) {
					return
				}
				name := fmt.Sprintf("distinct-%05d", i)
				if _, err := ar.create(name, name, true); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d concurrent CREATEs on distinct targets failed", n, res.distinct)
	}
	res.perSecond = float64(res.distinct) / elapsed.Seconds()
	return nil
}

// burst sends all at once, ten CREATEs per target; one per target is
// admitted, the others refused as busy. None may time out.
func (ar *admissionRun) burst() error {
	res := ar.res
	var (
		timeouts, admitted atomic.Int64
		wg                 sync.WaitGroup
	)
	ready := make(chan struct{})
	for i := range res.burst {
		wg.Go(func() {
			<-ready
			_, err := ar.create(fmt.Sprintf("burst-%05d", i), fmt.Sprintf("burst-target-%03d", i%res.burstTargets), i%2 == 0)
			switch {
			case err == nil:
				admitted.Add(1)
			case isTimeout(err):
				if timeouts.Add(1) == 1 {
					progress("admission: burst: first timeout: %v", err)
				}
			}
		})
	}
	close(ready)
	wg.Wait()
	res.burstTimeouts, res.burstAdmitted = int(timeouts.Load()), int(admitted.Load())
	if res.burstAdmitted > res.burstTargets {
		return fmt.Errorf("burst: %d CREATEs admitted on %d targets", res.burstAdmitted, res.burstTargets)
	}
	return nil
}

// twinGroup serves a copy of the WorkflowExecution CRD (schema and
// validation rules alike) that no webhook matches.
const twinGroup = "bench.targetlock.io"

// installCopy installs the WFE CRD's copy in group and waits until it is
// served.
func installCopy(cfg *rest.Config, group string) error {
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(root, "config", "crd", "bases", v1alpha1.GroupVersion.Group+"_workflowexecutions.yaml"))
	if err != nil {
		return err
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.Unmarshal(data, crd); err != nil {
		return err
	}
	crd.Name, crd.Spec.Group = crd.Spec.Names.Plural+"."+group, group
	_, err = envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{crd}})
	return err
}

// copyOf is w as an object of the WFE CRD's copy in group.
func copyOf(w *v1alpha1.WorkflowExecution, group string) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(w)
	if err != nil {
		return nil, err
	}
	t := &unstructured.Unstructured{Object: m}
	t.SetAPIVersion(group + "/" + v1alpha1.GroupVersion.Version)
	t.SetKind("WorkflowExecution")
	return t, nil
}

// isTimeout reports an error from a CREATE that no webhook answered in
// time, or that got no answer at all.
func isTimeout(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Reason == metav1.StatusReasonForbidden {
		return false // a verdict: refused, not timed out
	}
	msg := err.Error()
	return apierrors.IsTimeout(err) || apierrors.IsServerTimeout(err) || errors.Is(err, context.DeadlineExceeded) ||
		strings.Contains(msg, "deadline exceeded") || strings.Contains(msg, "timeout") || strings.Contains(msg, "failed calling webhook")
}

// deploymentHash is the identity label of Deployment ns/name: the hash of
// its canonical identity, written out here rather than taken from
// pkg/target, which the webhook checks it against.
func deploymentHash(ns, name string) string {
	sum := sha256.Sum256([]byte(ns + "/Deployment.apps/" + name))
	return hex.EncodeToString(sum[:])[:40]
}

// directWFE is a WFE created as kubectl would, for the Deployment object.
func directWFE(ns, name, object string) *wrappers.WFEWrapper {
	return wrappers.MakeWFE(ns, name).Target("Deployment", ns, object).Workflow("manual")
}
