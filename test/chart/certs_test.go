package chart_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/cmd/webhook/app"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/certcheck"
)

// certsVerify runs `webhook certs verify` (the alias of `kubectl targetlock
// certs verify`) and returns its output.
func certsVerify(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := app.Run(context.Background(), append([]string{"certs", "verify", "--kubeconfig", kubeconfig}, args...), &out, &out)
	return out.String(), err
}

func TestCertsVerify(t *testing.T) {
	mainInstall(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c := env.Client
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "certs-"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: unreachableNS}}); err != nil {
		t.Fatal(err)
	}
	f := certsFixture{ctx: ctx, c: c, ns: ns.Name}
	verifyGood(ctx, t, f)
	f.issued(t)
	for _, tc := range certsCases {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, ns.Name) })
	}
}

// certsFixture creates the Secrets and webhook configurations the cases
// check, in ns.
type certsFixture struct {
	ctx context.Context
	c   client.Client
	ns  string
}

func (f certsFixture) secret(t *testing.T, name string, crt, key []byte) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}}
	if err := f.c.Create(f.ctx, s); err != nil {
		t.Fatal(err)
	}
}

// webhookConfig registers a configuration that intercepts nothing but
// the unreachable namespace: the checks read it, the API server calls it
// only there.
func (f certsFixture) webhookConfig(t *testing.T, name string, caBundle []byte, cc admissionregistrationv1.WebhookClientConfig, annotations ...string) {
	t.Helper()
	cc.CABundle = caBundle
	none, fail := admissionregistrationv1.SideEffectClassNoneOnDryRun, admissionregistrationv1.Fail
	w := localWebhook()
	w.Name = name
	for i := 0; i+1 < len(annotations); i += 2 {
		metav1.SetMetaDataAnnotation(&w.ObjectMeta, annotations[i], annotations[i+1])
	}
	w.Webhooks[0].Name = name + ".targetlock.io"
	w.Webhooks[0].ClientConfig = cc
	w.Webhooks[0].SideEffects, w.Webhooks[0].FailurePolicy = &none, &fail
	w.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": unreachableNS}}
	if err := f.c.Create(f.ctx, w); err != nil {
		t.Fatal(err)
	}
}

// verifyGood checks the webhook the API server really calls, with its
// real certificate.
func verifyGood(ctx context.Context, t *testing.T, f certsFixture) {
	serveWebhook(ctx, t, env.Config, f.ns)
	dir := env.Environment.WebhookInstallOptions.LocalServingCertDir
	crt, err := os.ReadFile(filepath.Join(dir, "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile(filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	f.secret(t, "good", crt, key)
	out, err := certsVerify(t, "--webhook-configuration", "targetlock-local", "--namespace", f.ns, "--secret", "good",
		"--certificate", "-", "--min-validity", "1h", "--dry-run-create", "--dry-run-namespace", f.ns)
	fmt.Printf("certs verify (good):\n%s", out)
	// Every certificate check passes; the scope check reports the one
	// namespace this test keeps from the webhook (for the unreachable case).
	if strings.Count(out, "PASS") != 10 || strings.Count(out, "FAIL") != 1 || !strings.Contains(out, "notin ("+unreachableNS+")") {
		t.Errorf("want 10 passing checks and guarded-scope naming %s: %v\n%s", unreachableNS, err, out)
	}
}

// issued creates the Secrets and configurations of certsCases, from
// certificates issued here.
func (f certsFixture) issued(t *testing.T) {
	svc := admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Name: "tl-targetlock-webhook", Namespace: releaseNS, Path: ptr.To("/validate-workflowexecution")}}
	dns := []string{"tl-targetlock-webhook.targetlock-system.svc", "tl-targetlock-webhook.targetlock-system.svc.cluster.local"}
	ca, crt, key := issue(t, dns, 90*24*time.Hour)
	otherCA, _, otherKey := issue(t, dns, 90*24*time.Hour)
	_, shortCrt, shortKey := issue(t, dns, 2*24*time.Hour)
	noSANCA, noSANCrt, noSANKey := issue(t, dns[:1], 90*24*time.Hour)

	f.secret(t, "good-static", crt, key)
	f.secret(t, "short", shortCrt, shortKey)
	f.secret(t, "mismatched", crt, otherKey)
	f.secret(t, "no-san", noSANCrt, noSANKey)
	f.webhookConfig(t, "right-ca", ca, svc)
	f.webhookConfig(t, "cert-manager-ca", ca, svc, certcheck.InjectCAFromAnnotation, releaseNS+"/tl-targetlock-webhook-cert")
	f.webhookConfig(t, "warn-mode", ca, svc, admission.EnforcementAnnotation, string(admission.Warn))
	f.webhookConfig(t, "bad-mode", ca, svc, admission.EnforcementAnnotation, "audit")
	f.webhookConfig(t, "wrong-ca", otherCA, svc)
	f.webhookConfig(t, "no-san-ca", noSANCA, svc)
	// Loopback only: nothing listens on port 1.
	f.webhookConfig(t, "unreachable", ca, admissionregistrationv1.WebhookClientConfig{URL: ptr.To("https://127.0.0.1:1/validate-workflowexecution")})
}

// certsCase is one run of certs verify against the issued fixtures.
type certsCase struct {
	name, config, secret string
	extra                []string
	failing, message     string
	skipped              string
	// passing names a check that passes with a detail naming message.
	passing string
}

var certsCases = []certsCase{
	{name: "a narrowed webhook is reported unguarded", config: "right-ca", secret: "good-static", failing: "guarded-scope", message: "namespaceSelector"},
	{name: "enforce mode by default", config: "right-ca", secret: "good-static", passing: "enforcement", message: "enforce: a second WorkflowExecution"},
	{name: "warn mode passes and says so", config: "warn-mode", secret: "good-static", passing: "enforcement", message: "warn — refusals are recorded, not enforced (switch with --set webhook.enforcement=enforce)"},
	{name: "an unknown mode fails", config: "bad-mode", secret: "good-static", failing: "enforcement", message: `"audit"`},
	{name: "wrong caBundle", config: "wrong-ca", secret: "good-static", failing: "ca-bundle-verifies-chain", message: "different CAs"},
	{name: "missing SAN", config: "no-san-ca", secret: "no-san", failing: "subject-alternative-names", message: "svc.cluster.local"},
	{name: "soon expiring", config: "right-ca", secret: "short", failing: "validity", message: "less than --min-validity"},
	{name: "mismatched key", config: "right-ca", secret: "mismatched", failing: "key-matches-certificate", message: "do not belong together"},
	{name: "missing secret", config: "right-ca", secret: "nope", failing: "serving-secret", message: "not found"},
	{name: "certificate not ready", config: "cert-manager-ca", secret: "good-static", extra: []string{"--certificate", "tl-targetlock-webhook-cert"}, failing: "certificate-ready", message: "tl-targetlock-webhook-cert"},
	{name: "no cert-manager, no Certificate check", config: "right-ca", secret: "good-static", extra: []string{"--certificate", "tl-targetlock-webhook-cert"}, skipped: "certificate-ready"},
	{name: "webhook unreachable", config: "unreachable", secret: "good-static", extra: []string{"--dry-run-create", "--dry-run-namespace", unreachableNS}, failing: "dry-run-create", message: "could not call the webhook"},
}

// check runs certs verify (JSON) for the case in ns and checks its results.
func (tc certsCase) check(t *testing.T, ns string) {
	args := append([]string{"--webhook-configuration", tc.config, "--namespace", ns, "--secret", tc.secret, "--certificate", "-", "-o", "json"}, tc.extra...)
	out, err := certsVerify(t, args...)
	var rs []certcheck.Result
	if jerr := json.Unmarshal([]byte(out), &rs); jerr != nil {
		t.Fatalf("output is not JSON: %v\n%s", jerr, out)
	}
	if tc.failing == "" {
		tc.checkPassing(t, rs, err, out)
		return
	}
	if err == nil {
		t.Fatalf("want failure of %s, passed:\n%s", tc.failing, out)
	}
	tc.checkFailing(t, rs, out)
}

// checkPassing: only the scope check may fail, since these configurations
// are narrowed to the unreachable namespace on purpose.
func (tc certsCase) checkPassing(t *testing.T, rs []certcheck.Result, err error, out string) {
	t.Helper()
	if slices.ContainsFunc(rs, func(r certcheck.Result) bool { return !r.OK && r.Check != "guarded-scope" }) {
		t.Errorf("want every certificate check to pass, got %v\n%s", err, out)
	}
	if tc.skipped != "" && !slices.ContainsFunc(rs, func(r certcheck.Result) bool { return r.Check == tc.skipped && r.Skipped && r.OK }) {
		t.Errorf("want %s skipped:\n%s", tc.skipped, out)
	}
	if tc.passing != "" && !slices.ContainsFunc(rs, func(r certcheck.Result) bool {
		return r.Check == tc.passing && r.OK && strings.Contains(r.Detail, tc.message)
	}) {
		t.Errorf("want %s passing with %q:\n%s", tc.passing, tc.message, out)
	}
}

// checkFailing: the failing check fails with a detail or fix naming the
// message, and a fix.
func (tc certsCase) checkFailing(t *testing.T, rs []certcheck.Result, out string) {
	t.Helper()
	for _, r := range rs {
		if r.Check == tc.failing {
			if r.OK || !strings.Contains(r.Detail+" "+r.Fix, tc.message) || r.Fix == "" {
				t.Errorf("%s: %+v; want a failure mentioning %q with a fix", tc.failing, r, tc.message)
			}
			if tc.name == "wrong caBundle" {
				fmt.Printf("certs verify (%s): %s: %s -> fix: %s\n", tc.name, r.Check, r.Detail, r.Fix)
			}
			return
		}
	}
	t.Errorf("no %s check in:\n%s", tc.failing, out)
}
