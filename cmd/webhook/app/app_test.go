package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/targetlock/targetlock/test/framework/cluster"

	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/targetlock/targetlock/api/v1alpha1"
	"github.com/targetlock/targetlock/cmd/webhook/app"
	"github.com/targetlock/targetlock/internal/plugin"
	"github.com/targetlock/targetlock/pkg/target"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

const leaseNamespace = "targetlock-system"

// server is the webhook command running in-process against a real API
// server, which calls it over TLS.
type server struct {
	env        *testenv.Env
	kubeconfig string
	certDir    string
	addr       string // webhook host:port
	probe      string // http://host:port
	metrics    string // http://host:port
}

func TestMain(m *testing.M) { testenv.Main(m) }

var shared = testenv.Fixture[*server]{Start: start}

func getServer(t *testing.T) *server {
	t.Helper()
	return shared.Get(t)
}

// freeAddr is a loopback address free at the time of the call.
func freeAddr() (string, error) {
	port, err := cluster.FreePort()
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), err
}

func start() (*server, func() error, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, nil, err
	}
	env, err := testenv.Start(testenv.Options{Webhooks: envtest.WebhookInstallOptions{
		Paths: []string{filepath.Join(root, "config", "webhook")},
	}})
	if err != nil {
		return nil, nil, err
	}
	s := &server{env: env}
	stopServer := func() error { return nil }
	stop := func() error { return errors.Join(stopServer(), env.Stop()) }
	dir, err := os.MkdirTemp("", "webhook-app-")
	if err != nil {
		return nil, stop, err
	}
	stopEnv := stop
	stop = func() error { return errors.Join(stopEnv(), os.RemoveAll(dir)) }
	s.kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := env.Kubeconfig(s.kubeconfig); err != nil {
		return nil, stop, err
	}
	// A copy of the serving certificate, so the reload test can replace it.
	wo := env.Environment.WebhookInstallOptions
	s.certDir = filepath.Join(dir, "certs")
	if err := os.Mkdir(s.certDir, 0o700); err != nil {
		return nil, stop, err
	}
	for _, f := range []string{"tls.crt", "tls.key"} {
		data, err := os.ReadFile(filepath.Join(wo.LocalServingCertDir, f))
		if err != nil {
			return nil, stop, err
		}
		if err := os.WriteFile(filepath.Join(s.certDir, f), data, 0o600); err != nil {
			return nil, stop, err
		}
	}
	if err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: leaseNamespace}}); err != nil {
		return nil, stop, err
	}
	probe, err := freeAddr()
	if err != nil {
		return nil, stop, err
	}
	metrics, err := freeAddr()
	if err != nil {
		return nil, stop, err
	}
	s.probe, s.metrics = "http://"+probe, "http://"+metrics
	s.addr = net.JoinHostPort(wo.LocalServingHost, strconv.Itoa(wo.LocalServingPort))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	stopServer = func() error {
		cancel()
		if err := <-done; err != nil {
			return fmt.Errorf("webhook server: %w", err)
		}
		return nil
	}
	go func() {
		done <- app.Run(ctx, []string{
			"--kubeconfig", s.kubeconfig, "--lease-namespace", leaseNamespace, "--identity", "webhook-test",
			"--host", wo.LocalServingHost, "--port", strconv.Itoa(wo.LocalServingPort), "--cert-dir", s.certDir,
			"--metrics-bind-address", metrics, "--metrics-insecure", "--health-probe-bind-address", probe,
			"--claim-grace", "5s", "--zap-log-level", "error",
		}, io.Discard, io.Discard)
	}()
	return s, stop, nil
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func waitReady(t *testing.T, s *server) {
	t.Helper()
	NewWithT(t).Eventually(func() int { code, _ := get(s.probe + "/readyz"); return code }).
		WithTimeout(30 * time.Second).WithPolling(100 * time.Millisecond).Should(Equal(http.StatusOK))
}

func newNamespace(t *testing.T, s *server) string {
	t.Helper()
	n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "app-"}}
	if err := s.env.Client.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	return n.Name
}

func wfe(ns, name, tgt, rr string) *v1alpha1.WorkflowExecution {
	w := &v1alpha1.WorkflowExecution{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.WorkflowExecutionSpec{TargetResource: tgt, WorkflowRef: v1alpha1.WorkflowRef{WorkflowID: "restart"}},
	}
	if rr != "" {
		w.Spec.RemediationRequestRef = &v1alpha1.ObjectRef{Name: rr}
	}
	return w
}

func runCmd(args ...string) (string, error) {
	var out bytes.Buffer
	err := app.Run(context.Background(), args, &out, io.Discard)
	return out.String(), err
}

// TestServeDenyAndList: the API server calls the served webhook, a second
// CREATE for a busy target is denied, the metric moves, and `webhook
// denials` lists the denial; without the Report CRD nothing fails.
func TestServeDenyAndList(t *testing.T) {
	g := NewWithT(t)
	s := getServer(t)
	waitReady(t, s)
	ctx := context.Background()
	ns := newNamespace(t, s)
	tgt := ns + "/Deployment/checkout"

	g.Expect(s.env.Client.Create(ctx, wfe(ns, "owner", tgt, "rr-owner"))).To(Succeed())
	err := s.env.Client.Create(ctx, wfe(ns, "intruder", tgt, "rr-intruder"))
	g.Expect(err).To(HaveOccurred())
	g.Expect(err.Error()).To(And(ContainSubstring("ResourceBusy"), ContainSubstring(ns+"/owner"), ContainSubstring(ns+"/Deployment.apps/checkout")))

	code, body := get(s.metrics + "/metrics")
	g.Expect(code).To(Equal(http.StatusOK))
	g.Expect(body).To(MatchRegexp(`targetlock_webhook_admissions_total\{decision="denied",reason="ResourceBusy"\} [1-9]`))
	g.Expect(body).To(MatchRegexp(`targetlock_webhook_admissions_total\{decision="allowed",reason="Claimed"\} [1-9]`))
	g.Expect(body).To(ContainSubstring("targetlock_webhook_admission_duration_seconds_bucket"))
	// No Report CRD here: the denial is still refused, its Policy Report
	// result dropped and counted, and no write of one failed.
	g.Eventually(func() string { _, body := get(s.metrics + "/metrics"); return body }).WithTimeout(20 * time.Second).
		Should(MatchRegexp(`targetlock_webhook_policy_report_results_total\{outcome="dropped_not_installed"\} [1-9]`))
	_, body = get(s.metrics + "/metrics")
	g.Expect(body).NotTo(ContainSubstring(`outcome="failed"`))

	var table string
	g.Eventually(func() string {
		table, _ = runCmd("denials", "--kubeconfig", s.kubeconfig, "-n", ns)
		return table
	}).WithTimeout(20 * time.Second).WithPolling(200 * time.Millisecond).Should(ContainSubstring("ResourceBusy"))
	fmt.Print("webhook denials -n ", ns, ":\n", table)
	g.Expect(table).To(And(ContainSubstring("LAST SEEN"), ContainSubstring(ns+"/Deployment.apps/checkout"),
		ContainSubstring(ns+"/owner"), ContainSubstring(ns+"/intruder"), ContainSubstring("RemediationRequest/rr-intruder")))

	out, err := runCmd("denials", "--kubeconfig", s.kubeconfig, "-A", "-o", "json", "--target", ns+"/deployment/checkout")
	g.Expect(err).NotTo(HaveOccurred())
	var ds plugin.List[plugin.Denial]
	g.Expect(json.Unmarshal([]byte(out), &ds)).To(Succeed(), out)
	g.Expect(ds.Items).To(ContainElement(And(
		HaveField("Reason", "ResourceBusy"), HaveField("Holder", ns+"/owner"),
		HaveField("WorkflowExecution", ns+"/intruder"), HaveField("Namespace", ns),
		HaveField("Message", ContainSubstring("ResourceBusy")))))

	out, err = runCmd("denials", "--kubeconfig", s.kubeconfig, "-A", "--target", ns+"/Deployment/other")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("No denials found."))
	out, err = runCmd("denials", "--kubeconfig", s.kubeconfig, "-n", ns, "--since", "1ns")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(out).To(ContainSubstring("No denials found."))

	_, err = runCmd("denials", "--kubeconfig", s.kubeconfig, "--target", "a/b/c/d")
	g.Expect(err).To(MatchError(ContainSubstring(target.Form)))
	_, err = runCmd("denials", "--kubeconfig", s.kubeconfig, "-o", "xml")
	g.Expect(err).To(MatchError(ContainSubstring("unknown output format")))
}
