package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/test/framework/cluster"
	"github.com/targetlock/targetlock/test/framework/testcert"
)

// The bare webhooks answer CREATEs of a third copy of the WFE resource, in
// bareGroup, which only they match: one writes a Lease and allows, the
// other only allows. They are the least a webhook can cost on this API
// server: TLS, the review's JSON both ways, and (the first) the one Lease
// write a claim cannot do without. Nothing of targetlock runs in them.
const (
	bareGroup = "bare.bench.targetlock.io"
	bareLabel = "bench.targetlock.io/bare"
)

type bareWebhook struct {
	leases func(context.Context, *coordinationv1.Lease) error
	ns     string
}

// bareEnv, set to a kubeconfig, makes the bench binary serve the bare
// webhooks (serveBare) instead: a process of its own, as targetlock's
// webhooks are.
const bareEnv = "TARGETLOCK_BENCH_BARE_WEBHOOK_KUBECONFIG"

// serveBare serves the bare webhooks on loopback until killed, writing
// Leases in ns; its first line on stdout is its address and its CA.
func serveBare(kubeconfig, ns string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg = fastConfig(cfg)
	cfg.ContentType = runtime.ContentTypeProtobuf // as the webhook writes its Leases
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	b := &bareWebhook{ns: ns, leases: func(ctx context.Context, l *coordinationv1.Lease) error {
		_, err := cs.CoordinationV1().Leases(ns).Create(ctx, l, metav1.CreateOptions{})
		return err
	}}
	caPEM, certPEM, keyPEM, err := testcert.Issue([]string{"127.0.0.1"}, time.Hour)
	if err != nil {
		return err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return err
	}
	fmt.Printf("%s %s\n", ln.Addr(), base64.StdEncoding.EncodeToString(caPEM))
	var reqs, nanos atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stats" {
			fmt.Fprintf(w, "%d %d\n", reqs.Load(), nanos.Load())
			return
		}
		start := time.Now()
		b.ServeHTTP(w, r)
		if r.URL.Path == "/write" {
			reqs.Add(1)
			nanos.Add(int64(time.Since(start)))
		}
	}), ReadHeaderTimeout: 5 * time.Second}
	return srv.Serve(ln)
}

// bareProcess is the bare webhooks' process, as its parent sees it.
type bareProcess struct {
	stop  func()
	stats *http.Client
	url   string
}

// served returns how many CREATEs the writing bare webhook answered and
// the time it spent on them, in its HTTP handler.
func (b *bareProcess) served(ctx context.Context) (n int64, d time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url+"/stats", nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := b.stats.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	var nanos int64
	_, err = fmt.Fscan(resp.Body, &n, &nanos)
	return n, time.Duration(nanos), err
}

// startBareWebhooks starts the bare webhooks' process and registers them.
func startBareWebhooks(ctx context.Context, c *cluster.Cluster, ns string) (*bareProcess, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "--bare-namespace="+ns)
	cmd.Env = append(os.Environ(), bareEnv+"="+c.Kubeconfig)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	line, err := bufio.NewReader(out).ReadString('\n')
	addr, ca, ok := strings.Cut(strings.TrimSpace(line), " ")
	caPEM, decErr := base64.StdEncoding.DecodeString(ca)
	if err != nil || !ok || decErr != nil {
		stop()
		return nil, fmt.Errorf("the bare webhook process did not say where it serves: %q: %w", line, errors.Join(err, decErr))
	}
	admin, err := kubernetes.NewForConfig(fastConfig(c.Env.Config))
	if err != nil {
		stop()
		return nil, err
	}
	url := "https://" + addr
	hook := func(mode string) admissionregistrationv1.ValidatingWebhook {
		return admissionregistrationv1.ValidatingWebhook{
			Name:                    mode + "." + bareGroup,
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: ptr.To(url + "/" + mode), CABundle: caPEM},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{bareGroup}, APIVersions: []string{"*"}, Resources: []string{"workflowexecutions"}}}},
			ObjectSelector:          &metav1.LabelSelector{MatchLabels: map[string]string{bareLabel: mode}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNoneOnDryRun),
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To[int32](10),
		}
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: bareGroup},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{hook("write"), hook("none")}}
	if _, err := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, vwc, metav1.CreateOptions{}); err != nil {
		stop()
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &bareProcess{stop: stop, url: url, stats: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}}, nil
}

// ServeHTTP answers one AdmissionReview: allowed, after a Lease CREATE on
// /write.
func (b *bareWebhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	review := admissionv1.AdmissionReview{}
	if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
		http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
	if r.URL.Path == "/write" {
		l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "bare-" + string(review.Request.UID), Namespace: b.ns},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(string(review.Request.UID))}}
		if err := b.leases(r.Context(), l); err != nil {
			resp.Allowed, resp.Result = false, &metav1.Status{Message: err.Error()}
		}
	}
	review.Request, review.Response = nil, resp
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(review)
}

// createBare times the CREATE of the bare copy of a direct WFE name,
// through the bare webhook mode ("write" or "none").
func (ar *admissionRun) createBare(name, mode string) (time.Duration, error) {
	t, err := copyOf(directWFE(ar.ns, name, name).Obj(), bareGroup)
	if err != nil {
		return 0, err
	}
	t.SetLabels(map[string]string{bareLabel: mode})
	start := time.Now()
	err = ar.api.Create(ar.ctx, t)
	return time.Since(start), err
}

// warmBare sends bare CREATEs until the API server calls the bare
// webhooks (it learns of a new configuration within a moment): until one
// through the writing webhook leaves its Lease.
func (ar *admissionRun) warmBare() error {
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		_, errW := ar.createBare(fmt.Sprintf("bare-warm-%d-w", i), "write")
		_, errN := ar.createBare(fmt.Sprintf("bare-warm-%d-n", i), "none")
		if err := errors.Join(errW, errN); err != nil {
			return err
		}
		leases := &coordinationv1.LeaseList{}
		if err := ar.api.List(ar.ctx, leases, client.InNamespace(ar.ns)); err != nil {
			return err
		}
		if len(leases.Items) > 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("the API server did not call the bare webhooks within 30s")
}
