package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/targetlock/targetlock/test/framework/testcert"
	"github.com/targetlock/targetlock/test/framework/wrappers"

	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"github.com/cert-manager/cert-manager/pkg/controller/cainjector"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

// certManagerMode installs the chart in its default mode. cert-manager's
// controller cannot be built here, so this plays its part as the chart tests
// do: it writes the serving Secret the CA issuer would write (owned by the
// Certificate, as with cert-manager's --enable-certificate-owner-ref) and
// marks the Certificate Ready; cert-manager's own cainjector, run in this
// process, fills the caBundle.
func (e *e2e) certManagerMode(ctx context.Context) error {
	step("cert-manager CRDs from " + e.certManagerCRDs)
	if err := e.applyCRDs(ctx, e.certManagerCRDs); err != nil {
		return err
	}
	step("helm install (certs.mode=cert-manager)")
	args := append(append([]string{"install", e.release}, e.chartArgs()...), "-n", e.namespace, "--create-namespace")
	if err := e.helm(ctx, append(args, e.setFlags([]string{"certs.mode=cert-manager"})...)...); err != nil {
		return err
	}
	stopInjector, err := e.startCAInjector(ctx)
	if err != nil {
		return err
	}
	defer stopInjector()
	if err := e.issue(ctx); err != nil {
		return err
	}
	if err := e.waitCABundle(ctx); err != nil {
		return err
	}
	n, err := e.waitPodsReady(ctx, 5)
	if err != nil {
		return err
	}
	step(fmt.Sprintf("%d pods Ready", n))
	if err := e.certsVerify(ctx); err != nil {
		return err
	}
	wfe := func(name string) *v1alpha1.WorkflowExecution {
		return wrappers.MakeWFE(stormNS, name).Target("Deployment", stormNS, "cert-manager-mode").Workflow("manual").Obj()
	}
	first := wfe("cert-manager-mode-1")
	if err := e.c.Create(ctx, first); err != nil {
		return fmt.Errorf("the first WFE for a free object: %w", err)
	}
	if err := mustBeRefused(e.c.Create(ctx, wfe("cert-manager-mode-2"))); err != nil {
		return err
	}
	if err := e.c.Delete(ctx, first); err != nil {
		return err
	}
	return e.waitLocksReleased(ctx)
}

// issue writes the serving Secret as cert-manager's CA issuer would, and
// marks the serving Certificate Ready.
func (e *e2e) issue(ctx context.Context) error {
	name := e.release + "-targetlock"
	if bytes.Contains([]byte(e.release), []byte("targetlock")) {
		name = e.release
	}
	certName := name + "-webhook-cert"
	cert := &cmv1.Certificate{}
	if err := poll(ctx, time.Minute, "the serving Certificate", func(ctx context.Context) error {
		return e.c.Get(ctx, client.ObjectKey{Namespace: e.namespace, Name: certName}, cert)
	}); err != nil {
		return err
	}
	caPEM, certPEM, keyPEM, err := testcert.Issue(cert.Spec.DNSNames, 90*24*time.Hour)
	if err != nil {
		return err
	}
	yes := true
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.namespace, Name: cert.Spec.SecretName,
			Annotations: map[string]string{cmv1.CertificateNameKey: certName},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "cert-manager.io/v1", Kind: "Certificate", Name: cert.Name, UID: cert.UID,
				Controller: &yes, BlockOwnerDeletion: &yes}}},
		Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{"ca.crt": caPEM, corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	}
	if err := e.c.Create(ctx, secret); err != nil {
		return fmt.Errorf("writing the serving Secret: %w", err)
	}
	now := metav1.Now()
	cert.Status.Conditions = []cmv1.CertificateCondition{{Type: cmv1.CertificateConditionReady, Status: cmmeta.ConditionTrue,
		Reason: "Ready", Message: "issued by the e2e test", LastTransitionTime: &now}}
	if err := e.c.Status().Update(ctx, cert); err != nil {
		return fmt.Errorf("marking the Certificate Ready: %w", err)
	}
	step("serving Secret " + secret.Name + " issued, Certificate " + certName + " Ready")
	return nil
}

// startCAInjector runs cert-manager's cainjector for webhook configurations.
func (e *e2e) startCAInjector(ctx context.Context) (func(), error) {
	cfg := rest.CopyConfig(e.cfg)
	cfg.UserAgent = "cert-manager-cainjector" // its server-side apply field manager
	return e.runManager(ctx, "cainjector", cfg, func(mgr ctrl.Manager) error {
		return cainjector.RegisterAllInjectors(ctx, mgr, cainjector.SetupOptions{
			EnableCertificatesDataSource: true,
			EnabledReconcilersFor:        map[string]bool{"validatingwebhookconfiguration": true, "mutatingwebhookconfiguration": true},
		})
	})
}

// waitCABundle waits until cainjector has filled the caBundle of both of
// the release's webhook configurations (mutating and validating).
func (e *e2e) waitCABundle(ctx context.Context) error {
	return poll(ctx, time.Minute, "the caBundles injected", func(ctx context.Context) error {
		var bundles [][]byte
		vwcs := &admissionregistrationv1.ValidatingWebhookConfigurationList{}
		mwcs := &admissionregistrationv1.MutatingWebhookConfigurationList{}
		for _, l := range []client.ObjectList{vwcs, mwcs} {
			if err := e.c.List(ctx, l, client.MatchingLabels{"app.kubernetes.io/instance": e.release}); err != nil {
				return err
			}
		}
		for _, v := range vwcs.Items {
			for _, w := range v.Webhooks {
				bundles = append(bundles, w.ClientConfig.CABundle)
			}
		}
		for _, m := range mwcs.Items {
			for _, w := range m.Webhooks {
				bundles = append(bundles, w.ClientConfig.CABundle)
			}
		}
		if len(bundles) < 2 {
			return fmt.Errorf("%d webhooks found, want the mutating and the validating one", len(bundles))
		}
		for _, b := range bundles {
			if len(b) == 0 {
				return errors.New("a caBundle is not injected yet")
			}
		}
		return nil
	})
}

// applyCRDs creates every CRD in dir (if absent) and waits until each is
// established.
func (e *e2e) applyCRDs(ctx context.Context, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return fmt.Errorf("no CRD manifests in %q: %w", dir, err)
	}
	var names []string
	for _, f := range files {
		crds, err := readCRDs(f)
		if err != nil {
			return err
		}
		for _, crd := range crds {
			if err := e.c.Create(ctx, crd); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("creating CRD %s: %w", crd.Name, err)
			}
			names = append(names, crd.Name)
		}
	}
	return e.waitEstablished(ctx, names)
}

// waitEstablished waits until every CRD of names is established.
func (e *e2e) waitEstablished(ctx context.Context, names []string) error {
	return poll(ctx, time.Minute, "the CRDs to be established", func(ctx context.Context) error {
		for _, n := range names {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := e.c.Get(ctx, client.ObjectKey{Name: n}, crd); err != nil {
				return err
			}
			established := false
			for _, c := range crd.Status.Conditions {
				established = established || (c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue)
			}
			if !established {
				return fmt.Errorf("CRD %s not established", n)
			}
		}
		return nil
	})
}

// readCRDs returns the CRDs among the YAML documents of file f (a document
// of comments only, as a vendored file's header, holds none).
func readCRDs(f string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	data, err := os.ReadFile(f)
	if err != nil {
		return nil, err
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		switch err := dec.Decode(crd); {
		case errors.Is(err, io.EOF):
			return crds, nil
		case err != nil:
			return nil, fmt.Errorf("%s: %w", f, err)
		case crd.Kind == "CustomResourceDefinition":
			crds = append(crds, crd)
		}
	}
}
