package plugin

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	"github.com/targetlock/targetlock/test/framework/testcert"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

// certsRelease is a release in a new namespace whose webhook configuration
// trusts a fresh CA, but whose serving Secret is missing: the Secret to
// fix it is returned. The configuration is removed after the test (it
// fails closed and no webhook serves it).
func certsRelease(t *testing.T) (ns string, fix *corev1.Secret) {
	t.Helper()
	env, _ := cluster(t)
	ns = namespace(t, env.Client, "certs")
	svc := "tl-webhook." + ns + ".svc"
	ca, crt, key, err := testcert.Issue([]string{svc, svc + ".cluster.local"}, 365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: ns},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name: "wfe.targetlock.io",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{CABundle: ca,
				Service: &admissionregistrationv1.ServiceReference{Namespace: ns, Name: "tl-webhook", Path: ptr.To("/validate")}},
			Rules: []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{"targetlock.io"}, APIVersions: []string{"v1alpha1"}, Resources: []string{"workflowexecutions"}}}},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
		}}}
	mustCreate(t, env.Client, vwc)
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), vwc) })
	return ns, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tl-tls"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key}}
}

// fakeWaitClock makes certs verify --wait wait on a clock the test steps.
func fakeWaitClock(t *testing.T) *clocktesting.FakeClock {
	fake := clocktesting.NewFakeClock(time.Now())
	waitClock = fake
	t.Cleanup(func() { waitClock = clock.RealClock{} })
	return fake
}

// verifyAsync runs certs verify --wait 2m --interval 1m on ns's release.
func verifyAsync(kc, ns string) <-chan result {
	done := make(chan result, 1)
	go func() {
		done <- against(kc, "certs", "verify", "-n", ns, "--webhook-configuration", ns, "--secret", "tl-tls", "--certificate", "-",
			"--wait", "2m", "--interval", "1m")
	}()
	return done
}

// waiting returns once verify waits for its next attempt.
func waiting(t *testing.T, fake *clocktesting.FakeClock) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		if !fake.HasWaiters() {
			return errors.New("certs verify is not waiting to retry")
		}
		return nil
	})
}

// step lets verify's next attempt run once it waits for it.
func step(t *testing.T, fake *clocktesting.FakeClock) {
	t.Helper()
	waiting(t, fake)
	fake.Step(time.Minute)
}

func finished(t *testing.T, done <-chan result) result {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(time.Minute):
		t.Fatal("certs verify --wait did not finish")
		return result{}
	}
}

// --wait retries until the problem is fixed, then passes.
func TestCertsVerifyWaitPasses(t *testing.T) {
	env, kc := cluster(t)
	ns, fix := certsRelease(t)
	fake := fakeWaitClock(t)
	done := verifyAsync(kc, ns)
	waiting(t, fake) // the first attempt failed: no Secret
	mustCreate(t, env.Client, fix)
	fake.Step(time.Minute)
	r := finished(t, done)
	if r.code != ExitOK || !strings.Contains(r.errOut, "serving-secret") || strings.Contains(r.out, "FAIL") || !strings.Contains(r.out, "PASS") {
		t.Errorf("exit %d (%v)\nstdout %s\nstderr %s", r.code, r.err, r.out, r.errOut)
	}
}

// --wait gives up when the time is over, printing the last failure.
func TestCertsVerifyWaitGivesUp(t *testing.T) {
	_, kc := cluster(t)
	ns, _ := certsRelease(t)
	fake := fakeWaitClock(t)
	done := verifyAsync(kc, ns)
	step(t, fake)
	step(t, fake)
	r := finished(t, done)
	if r.code != ExitFailed || !strings.Contains(r.out, "serving-secret") || !strings.Contains(r.out, "FAIL") {
		t.Errorf("exit %d (%v)\nstdout %s\nstderr %s", r.code, r.err, r.out, r.errOut)
	}
}
