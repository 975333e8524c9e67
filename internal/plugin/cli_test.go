package plugin

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/test/framework/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var (
	kubeconfigOnce sync.Once
	kubeconfigPath string
	kubeconfigErr  error
)

// cluster is the shared control plane and an admin kubeconfig for it.
func cluster(t *testing.T) (*testenv.Env, string) {
	t.Helper()
	env := testenv.Shared(t)
	kubeconfigOnce.Do(func() {
		dir, err := os.MkdirTemp("", "plugin-")
		if err != nil {
			kubeconfigErr = err
			return
		}
		kubeconfigPath = filepath.Join(dir, "kubeconfig")
		kubeconfigErr = env.Kubeconfig(kubeconfigPath)
	})
	if kubeconfigErr != nil {
		t.Fatal(kubeconfigErr)
	}
	return env, kubeconfigPath
}

// result is one run of the command.
type result struct {
	out, errOut string
	err         error
	code        int
}

// runPlugin runs `kubectl targetlock args...` in-process.
func runPlugin(args ...string) result {
	var out, errOut bytes.Buffer
	cmd := NewCommand(genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut})
	cmd.SetArgs(args)
	err := Execute(context.Background(), cmd)
	return result{out: out.String(), errOut: errOut.String(), err: err, code: ExitCode(err)}
}

// against runs the command with --kubeconfig.
func against(kubeconfig string, args ...string) result {
	return runPlugin(append(args, "--kubeconfig", kubeconfig)...)
}

func mustCreate(t *testing.T, c client.Client, objs ...client.Object) {
	t.Helper()
	for _, o := range objs {
		if err := c.Create(context.Background(), o); err != nil {
			t.Fatalf("creating %T %s: %v", o, o.GetName(), err)
		}
	}
}

// namespace creates a namespace named from prefix and returns its name.
func namespace(t *testing.T, c client.Client, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	mustCreate(t, c, ns)
	return ns.Name
}

// ensureNamespace creates the namespace name unless it exists.
func ensureNamespace(t *testing.T, c client.Client, name string) {
	t.Helper()
	err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		t.Fatal(err)
	}
}

// decodeList decodes -o json output as kubectl would a v1 List.
func decodeList(t *testing.T, out string) *unstructured.UnstructuredList {
	t.Helper()
	list := &unstructured.UnstructuredList{}
	if err := list.UnmarshalJSON([]byte(out)); err != nil {
		t.Fatalf("not a List: %v\n%s", err, out)
	}
	if list.GetAPIVersion() != "v1" || list.GetKind() != "List" {
		t.Fatalf("apiVersion %q kind %q, want v1 List", list.GetAPIVersion(), list.GetKind())
	}
	return list
}
