// Package testenv starts a real control plane (etcd + kube-apiserver, built
// from source by `make tools`) with targetlock's CRDs installed. Every
// integration suite and the demo use it.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/targetlock/targetlock/api/v1alpha1"
)

// Env is a running control plane.
type Env struct {
	Environment *envtest.Environment
	Config      *rest.Config
	Scheme      *runtime.Scheme
	// Client talks to the API server directly: no cache, every read is live.
	Client client.Client

	dir string // files the API server reads; removed by Stop
}

// Options change what Start brings up.
type Options struct {
	// Webhooks are registered with the API server, which then calls them over TLS.
	Webhooks envtest.WebhookInstallOptions
	// SkipOwnCRDs leaves targetlock's CRDs out (a test that installs them itself).
	SkipOwnCRDs bool
	// CRDPaths are more CRD files or directories to install.
	CRDPaths []string
	// WebhookClientCert, if set, is presented by the API server to every
	// admission webhook it calls, as a cluster admin would configure it (an
	// AdmissionConfiguration whose kubeConfigFile names the certificate):
	// for webhooks that require a client certificate.
	WebhookClientCert *ClientCert
}

// Start brings up etcd and kube-apiserver and installs the CRDs. The binaries
// come from $KUBEBUILDER_ASSETS, or else from bin/ at the repository root.
func Start(opts Options) (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, err := assetsDir(root)
	if err != nil {
		return nil, err
	}
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		return nil, err
	}
	crds := opts.CRDPaths
	if !opts.SkipOwnCRDs {
		crds = append(crds, filepath.Join(root, "config", "crd", "bases"))
	}
	te := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     crds,
		ErrorIfCRDPathMissing: true,
		Scheme:                s,
		WebhookInstallOptions: opts.Webhooks,
		// A throwaway control plane: the API server drains for up to 20 s
		// by default, which every test run and bench section would wait for.
		ControlPlaneStopTimeout: 2 * time.Second,
	}
	e := &Env{Environment: te, Scheme: s}
	if opts.WebhookClientCert != nil {
		if err := e.presentWebhookClientCert(*opts.WebhookClientCert); err != nil {
			return nil, errors.Join(err, e.removeDir())
		}
	}
	if e.Config, err = te.Start(); err != nil {
		return nil, errors.Join(fmt.Errorf("starting control plane from %s: %w", assets, err), e.removeDir())
	}
	if e.Client, err = client.New(e.Config, client.Options{Scheme: s}); err != nil {
		return nil, errors.Join(fmt.Errorf("creating client: %w", err), e.Stop())
	}
	return e, nil
}

// presentWebhookClientCert has the API server present c to every webhook.
func (e *Env) presentWebhookClientCert(c ClientCert) error {
	dir, err := os.MkdirTemp("", "testenv-admission-")
	if err != nil {
		return err
	}
	e.dir = dir
	path, err := writeAdmissionConfig(dir, c)
	if err != nil {
		return err
	}
	e.Environment.ControlPlane.GetAPIServer().Configure().Set("admission-control-config-file", path)
	return nil
}

func (e *Env) removeDir() error {
	if e.dir == "" {
		return nil
	}
	return os.RemoveAll(e.dir)
}

// Stop shuts the control plane down.
func (e *Env) Stop() error {
	return errors.Join(e.Environment.Stop(), e.removeDir())
}

// AdminUser is the user of envtest's own client config and of the
// kubeconfig Kubeconfig writes.
const AdminUser = "admin"

// Kubeconfig writes an admin kubeconfig for this control plane to path.
func (e *Env) Kubeconfig(path string) error {
	user, err := e.Environment.ControlPlane.AddUser(envtest.User{Name: AdminUser, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("adding admin user: %w", err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("rendering kubeconfig: %w", err)
	}
	return os.WriteFile(path, data, 0o600)
}

// RepoRoot is the nearest directory above the working directory that holds
// targetlock's go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && isOurs(data) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("targetlock's go.mod not found above the working directory")
		}
		dir = parent
	}
}

func isOurs(gomod []byte) bool {
	const first = "module github.com/targetlock/targetlock\n"
	return len(gomod) >= len(first) && string(gomod[:len(first)]) == first
}

func assetsDir(root string) (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		dir = filepath.Join(root, "bin")
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return "", fmt.Errorf("%s not found in %s: run `make tools` (or set KUBEBUILDER_ASSETS): %w", bin, dir, err)
		}
	}
	return dir, nil
}
