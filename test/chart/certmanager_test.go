package chart_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/kube"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/targetlock/targetlock/test/framework/testenv"
)

// On a cluster without cert-manager the default install (certs.mode
// cert-manager) stops before applying anything, naming the three ways out,
// instead of the API server's bare "no matches for kind Certificate" for
// each Issuer and Certificate. Once cert-manager's CRDs are there, the
// same install goes through.
func TestCertManagerModeNeedsCertManager(t *testing.T) {
	testenv.SkipShort(t)
	bare, err := testenv.Start(testenv.Options{SkipOwnCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := bare.Stop(); err != nil {
			t.Error(err)
		}
	})
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := bare.Kubeconfig(kc); err != nil {
		t.Fatal(err)
	}
	installOn := func(name string) error {
		cfg := new(action.Configuration)
		if err := cfg.Init(kube.GetConfig(kc, "", releaseNS), releaseNS, "secret", t.Logf); err != nil {
			t.Fatal(err)
		}
		ch, err := loader.Load(chartDir(t))
		if err != nil {
			t.Fatal(err)
		}
		inst := action.NewInstall(cfg)
		inst.ReleaseName, inst.Namespace, inst.CreateNamespace, inst.Timeout = name, releaseNS, true, time.Minute
		_, err = inst.Run(ch, nil)
		return err
	}

	err = installOn("nocm")
	for _, want := range []string{"needs cert-manager", "install cert-manager", "--set certs.mode=helm", "certs.mode=manual"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("install without cert-manager: %v; want an error containing %q", err, want)
		}
	}

	dir, err := moduleDir("github.com/cert-manager/cert-manager")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := envtest.InstallCRDs(bare.Config, envtest.CRDInstallOptions{Paths: []string{filepath.Join(dir, "deploy", "crds")}}); err != nil {
		t.Fatal(err)
	}
	if err := installOn("withcm"); err != nil {
		t.Fatalf("install with cert-manager's CRDs: %v", err)
	}
}
