package chart_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/targetlock/targetlock/test/framework/testcert"
	"github.com/targetlock/targetlock/test/framework/testenv"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/release"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	apiregistrationv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

const mainRelease = "tl"

var (
	mainOnce sync.Once
	mainErr  error
)

// install installs the chart as a release, as `helm install` would.
func install(t *testing.T, name, ns string, vals map[string]any) (*release.Release, error) {
	t.Helper()
	cfg, ch := helmAction(t, ns)
	inst := action.NewInstall(cfg)
	inst.ReleaseName, inst.Namespace, inst.CreateNamespace = name, ns, true
	inst.Timeout = 2 * time.Minute
	return inst.Run(ch, vals)
}

// mainInstall installs the default chart (CRDs, cert-manager mode) once.
func mainInstall(t *testing.T) {
	t.Helper()
	apiServer(t)
	mainOnce.Do(func() {
		if _, mainErr = install(t, mainRelease, releaseNS, nil); mainErr == nil {
			mainErr = makeInert(mainRelease + "-targetlock")
		}
	})
	if mainErr != nil {
		t.Fatalf("helm install: %v", mainErr)
	}
}

// makeInert narrows a release's webhooks, and its label policy, to objects
// that never exist: no webhook pod runs here, and the API server must never
// dial the Service's DNS name. (The chart itself offers no selector: it
// guards everything.) A release in kubernaut mode has no mutating webhook.
func makeInert(name string) error {
	ctx := context.Background()
	never := &metav1.LabelSelector{MatchLabels: map[string]string{"targetlock.io/test-never": "true"}}
	m := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, m); err == nil {
		for i := range m.Webhooks {
			m.Webhooks[i].ObjectSelector = never
		}
		if err := env.Client.Update(ctx, m); err != nil {
			return err
		}
	} else if !apierrors.IsNotFound(err) {
		return err
	}
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, v); err != nil {
		return err
	}
	for i := range v.Webhooks {
		v.Webhooks[i].ObjectSelector = never
	}
	if err := env.Client.Update(ctx, v); err != nil {
		return err
	}
	// The label policy trusts its own release's orchestrator only: left
	// active, it would refuse every other release's (one API server holds
	// several releases here). A release in kubernaut mode has none.
	b := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{}
	switch err := env.Client.Get(ctx, client.ObjectKey{Name: name + "-target-hash-label"}, b); {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return err
	}
	b.Spec.MatchResources = &admissionregistrationv1.MatchResources{ObjectSelector: never}
	return env.Client.Update(ctx, b)
}

func TestInstallIsAcceptedByTheAPIServer(t *testing.T) {
	mainInstall(t)
	ctx := context.Background()
	c := env.Client
	for _, o := range []client.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNS, Name: "tl-targetlock-orchestrator"}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNS, Name: "tl-targetlock-webhook"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNS, Name: "tl-targetlock-webhook"}},
		&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "tl-targetlock"}},
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "tl-targetlock"}},
		&apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "workflowexecutions.targetlock.io"}},
		&admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: "tl-targetlock-terminal-is-final"}},
		&admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: "tl-targetlock-terminal-is-final"}},
	} {
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), o); err != nil {
			t.Errorf("%T %s not installed: %v", o, o.GetName(), err)
		}
	}
	certs := &unstructured.UnstructuredList{}
	certs.SetAPIVersion("cert-manager.io/v1")
	certs.SetKind("CertificateList")
	if err := c.List(ctx, certs, client.InNamespace(releaseNS)); err != nil || len(certs.Items) != 2 {
		t.Errorf("Certificates: %d, %v; want 2", len(certs.Items), err)
	}
}

// cert-manager's own cainjector, run in-process, fills the webhook
// configuration's caBundle from the Secret of the chart's Certificate,
// written here as cert-manager's CA issuer would write it.
func TestCAInjectorFillsTheCABundle(t *testing.T) {
	mainInstall(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, cmv1.AddToScheme, apiextensionsv1.AddToScheme, apiregistrationv1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(testWriter{t}), zap.UseDevMode(true)))
	cfg := rest.CopyConfig(env.Config)
	cfg.UserAgent = "cert-manager-cainjector" // its server-side apply field manager
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: s, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
		EnableCertificatesDataSource: true,
		EnabledReconcilersFor:        map[string]bool{"validatingwebhookconfiguration": true, "mutatingwebhookconfiguration": true},
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()

	caPEM, certPEM, keyPEM := issue(t, []string{"tl-targetlock-webhook.targetlock-system.svc"}, 90*24*time.Hour)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: releaseNS, Name: "tl-targetlock-webhook-tls",
			Annotations: map[string]string{cmv1.CertificateNameKey: "tl-targetlock-webhook-cert"}},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"ca.crt": caPEM, "tls.crt": certPEM, "tls.key": keyPEM},
	}
	if err := env.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}

	testenv.Eventually(t, 30*time.Second, func() error {
		select {
		case err := <-done:
			t.Fatalf("cainjector stopped: %v", err)
		default:
		}
		vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: "tl-targetlock"}, vwc); err != nil {
			return err
		}
		if got := vwc.Webhooks[0].ClientConfig.CABundle; string(got) != string(caPEM) {
			return fmt.Errorf("caBundle not injected; got %q", got)
		}
		mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: "tl-targetlock"}, mwc); err != nil {
			return err
		}
		if got := mwc.Webhooks[0].ClientConfig.CABundle; string(got) != string(caPEM) {
			return fmt.Errorf("the mutating webhook's caBundle not injected; got %q", got)
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("cainjector: %v", err)
	}
}

// issue makes a CA and a serving certificate for dnsNames signed by it.
func issue(t testing.TB, dnsNames []string, validFor time.Duration) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caPEM, certPEM, keyPEM, err := testcert.Issue(dnsNames, validFor)
	if err != nil {
		t.Fatal(err)
	}
	return caPEM, certPEM, keyPEM
}

// testWriter sends logs to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// upgrade upgrades a release, as `helm upgrade` would.
func upgrade(t *testing.T, name, ns string, vals map[string]any) error {
	t.Helper()
	cfg, ch := helmAction(t, ns)
	up := action.NewUpgrade(cfg)
	up.Namespace, up.Timeout = ns, 2*time.Minute
	_, err := up.Run(name, ch, vals)
	return err
}

// helmAction is the Helm SDK's configuration for ns on the test API
// server, and the chart from the repository.
func helmAction(t *testing.T, ns string) (*action.Configuration, *chart.Chart) {
	t.Helper()
	cfg := new(action.Configuration)
	if err := cfg.Init(kube.GetConfig(kubeconfig, "", ns), ns, "secret", t.Logf); err != nil {
		t.Fatal(err)
	}
	ch, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatal(err)
	}
	return cfg, ch
}

// In helm mode the chart's CA and certificate are kept on upgrade while
// more than 30 days remain, and re-issued when less do: an expired serving
// certificate would fail every WFE CREATE closed.
func TestHelmModeRenewsCertificatesBeforeExpiry(t *testing.T) {
	mainInstall(t) // the CRDs
	const ns, name = "renew-system", "renew"
	vals := map[string]any{"certs": map[string]any{"mode": "helm"}, "crds": map[string]any{"install": false}}
	if _, err := install(t, name, ns, vals); err != nil {
		t.Fatalf("helm install: %v", err)
	}
	if err := makeInert(name + "-targetlock"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	secret := func() *corev1.Secret {
		s := &corev1.Secret{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-targetlock-webhook-tls"}, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := secret()
	notAfter, err := time.Parse(time.RFC3339, first.Annotations["targetlock.io/not-after"])
	if err != nil || notAfter.Before(time.Now().Add(300*24*time.Hour)) {
		t.Fatalf("not-after annotation %q: %v", first.Annotations["targetlock.io/not-after"], err)
	}
	if err := upgrade(t, name, ns, vals); err != nil {
		t.Fatalf("helm upgrade: %v", err)
	}
	if !bytes.Equal(secret().Data["ca.crt"], first.Data["ca.crt"]) {
		t.Error("an upgrade with a year left re-issued the CA")
	}
	soon := secret()
	soon.Annotations["targetlock.io/not-after"] = time.Now().Add(10 * 24 * time.Hour).UTC().Format(time.RFC3339)
	if err := env.Client.Update(ctx, soon); err != nil {
		t.Fatal(err)
	}
	if err := upgrade(t, name, ns, vals); err != nil {
		t.Fatalf("helm upgrade: %v", err)
	}
	if renewed := secret(); bytes.Equal(renewed.Data["ca.crt"], first.Data["ca.crt"]) || bytes.Equal(renewed.Data["tls.crt"], first.Data["tls.crt"]) {
		t.Error("an upgrade with 10 days left kept the certificates")
	}
}
