package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// runManager runs a controller manager in this process (no metrics or probe
// endpoints) with what setup adds to it, until the returned stop is called.
// Its error, if any, is printed under name.
func (e *e2e) runManager(ctx context.Context, name string, cfg *rest.Config, setup func(ctrl.Manager) error) (stop func(), err error) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: e.scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		return nil, err
	}
	if err := setup(mgr); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := mgr.Start(ctx); err != nil {
			fmt.Println("    "+name+":", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}

// helm runs the helm CLI against the e2e cluster, echoing its output.
func (e *e2e) helm(ctx context.Context, args ...string) error {
	return e.exec(ctx, e.options.helm, append(args, "--kubeconfig", e.kubeconfig)...)
}

// certsVerify runs `kubectl targetlock certs verify` with a dry-run CREATE
// against the release; every check must pass (or skip). It waits as
// docs/operations.md tells CI to right after an install: a Ready pod is not
// yet a Service the API server reaches (kube-proxy's rules follow the
// EndpointSlice), and until it is, the dry-run CREATE is refused.
func (e *e2e) certsVerify(ctx context.Context) error {
	err := e.kubectlPlugin(ctx, []string{"ca-bundle-verifies-chain", "PASS"},
		"certs", "verify", "--release", e.release, "-n", e.namespace, "--dry-run-create", "--dry-run-namespace", "default",
		"--wait=2m", "--interval=2s")
	if err != nil {
		return fmt.Errorf("certs verify: %w", err)
	}
	return nil
}

func (e *e2e) exec(ctx context.Context, bin string, args ...string) error {
	_, err := e.run(ctx, bin, args...)
	return err
}

// run runs bin, echoing its command line and its output, and returns the output.
func (e *e2e) run(ctx context.Context, bin string, args ...string) (string, error) {
	fmt.Printf("$ %s %s\n", bin, strings.Join(args, " "))
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if b := indent(out.Bytes()); len(b) > 0 {
		os.Stdout.Write(append(b, '\n'))
	}
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w", bin, args[0], err)
	}
	return out.String(), nil
}

func indent(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte("    "), bytes.ReplaceAll(bytes.TrimRight(b, "\n"), []byte("\n"), []byte("\n    "))...)
}

// setFlags turns values into --set flags, adding the image under test.
// A release's chart package pins the image digest itself: the pods then
// run the digest under test only if the package pins it.
func (e *e2e) setFlags(values []string) []string {
	// metrics.insecure: scrape reads /metrics through the API server's pod
	// proxy, which forwards no credentials; test/security proves the
	// authenticated default.
	image := []string{"image.repository=" + e.repository, "image.pullPolicy=Never", "metrics.insecure=true"}
	if !strings.HasSuffix(e.chart, ".tgz") {
		image = append(image, "image.digest="+e.digest)
	}
	values = append(image, values...)
	var out []string
	for _, v := range values {
		out = append(out, "--set", v)
	}
	return out
}

// poll runs cond every 500ms until it returns nil or timeout passes; the
// last error says what was still missing.
func poll(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) error) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		last = cond(ctx)
		return last == nil, nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("waiting for %s: %w (last: %w)", what, err, last)
	}
	if err != nil {
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	return nil
}

// waitPodsReady waits until the release namespace has exactly want pods,
// all Ready and all running the image by digest, and returns how many.
func (e *e2e) waitPodsReady(ctx context.Context, want int) (int, error) {
	n := 0
	err := poll(ctx, 3*time.Minute, fmt.Sprintf("%d Ready pods in %s", want, e.namespace), func(ctx context.Context) error {
		pods := &corev1.PodList{}
		if err := e.c.List(ctx, pods, client.InNamespace(e.namespace)); err != nil {
			return err
		}
		n = 0
		for _, p := range pods.Items {
			if err := podReady(&p, e.digest); err != nil {
				return err
			}
			n++
		}
		if n != want {
			return fmt.Errorf("%d pods, want %d", n, want)
		}
		return nil
	})
	return n, err
}

func podReady(p *corev1.Pod, digest string) error {
	if p.DeletionTimestamp != nil {
		return fmt.Errorf("pod %s is terminating", p.Name)
	}
	ready := false
	for _, c := range p.Status.Conditions {
		ready = ready || (c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue)
	}
	if !ready {
		return fmt.Errorf("pod %s is not Ready (phase %s)", p.Name, p.Status.Phase)
	}
	for _, cs := range p.Status.ContainerStatuses {
		if !strings.HasSuffix(cs.ImageID, "@"+digest) {
			return fmt.Errorf("pod %s container %s runs image %q, want digest %s", p.Name, cs.Name, cs.ImageID, digest)
		}
	}
	return nil
}

// killPod takes one Ready pod of a component away: by eviction (which the
// PodDisruptionBudget must allow) or by deletion without grace (a crash).
func (e *e2e) killPod(ctx context.Context, component string, evict bool) (string, error) {
	pods := &corev1.PodList{}
	if err := e.c.List(ctx, pods, client.InNamespace(e.namespace), client.MatchingLabels{"app.kubernetes.io/component": component}); err != nil {
		return "", err
	}
	for _, p := range pods.Items {
		if podReady(&p, e.digest) != nil {
			continue
		}
		if evict {
			ev := &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name}}
			return p.Name, e.c.SubResource("eviction").Create(ctx, &p, ev)
		}
		return p.Name, e.c.Delete(ctx, &p, client.GracePeriodSeconds(0))
	}
	return "", fmt.Errorf("no Ready %s pod to kill", component)
}

// scrape reads /metrics of every Ready pod of a component through the API
// server's pod proxy and checks that each named metric is exported by one
// of them at least (a pod that served nothing yet lacks labelled series).
func (e *e2e) scrape(ctx context.Context, component string, want ...string) error {
	bodies, err := e.podMetrics(ctx, component)
	if err != nil {
		return err
	}
	var all []byte
	for _, body := range bodies {
		all = append(all, body...)
	}
	for _, m := range want {
		if !bytes.Contains(all, []byte("\n"+m)) {
			return fmt.Errorf("no %s pod exports %s", component, m)
		}
	}
	step(fmt.Sprintf("%s pods export %s", component, strings.Join(want, ", ")))
	return nil
}

// podMetrics is /metrics of every Ready pod of a component, by pod name,
// read through the API server's pod proxy.
func (e *e2e) podMetrics(ctx context.Context, component string) (map[string][]byte, error) {
	pods := &corev1.PodList{}
	if err := e.c.List(ctx, pods, client.InNamespace(e.namespace), client.MatchingLabels{"app.kubernetes.io/component": component}); err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(e.cfg)
	if err != nil {
		return nil, err
	}
	bodies := map[string][]byte{}
	for _, p := range pods.Items {
		if podReady(&p, e.digest) != nil {
			continue
		}
		body, err := cs.CoreV1().Pods(e.namespace).ProxyGet("http", p.Name, "8080", "/metrics", nil).DoRaw(ctx)
		if err != nil {
			return nil, fmt.Errorf("scraping %s: %w", p.Name, err)
		}
		bodies[p.Name] = body
	}
	return bodies, nil
}
