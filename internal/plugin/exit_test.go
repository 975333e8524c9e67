package plugin

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/targetlock/targetlock/test/framework/testenv"
)

// Every failure says what kind it is by its exit code.
func TestExitCodes(t *testing.T) {
	_, kc := cluster(t)
	closed := testenv.ClosedKubeconfig(t)
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		says string
	}{
		{"version --client", []string{"version", "--client"}, ExitOK, ""},
		{"--version", []string{"--version"}, ExitOK, ""},
		{"an unknown flag", []string{"locks", "--bogus", "--kubeconfig", kc}, ExitUsage, "unknown flag"},
		{"a stray argument", []string{"locks", "stray", "--kubeconfig", kc}, ExitUsage, "unknown command"},
		{"an unknown command", []string{"frobnicate"}, ExitUsage, "unknown command"},
		{"a bad output format", []string{"denials", "-o", "xml", "--kubeconfig", kc}, ExitUsage, "unknown output format"},
		{"a bad flag value", []string{"certs", "verify", "--wait", "soon", "--kubeconfig", kc}, ExitUsage, "invalid argument"},
		{"a malformed --target", []string{"denials", "--target", "a/b/c/d", "--kubeconfig", kc}, ExitUsage, "--target"},
		{"a kubeconfig that cannot be loaded", []string{"locks", "--kubeconfig", "/nonexistent"}, ExitUsage, "loading kubeconfig"},
		{"a context that cannot be loaded", []string{"locks", "--kubeconfig", kc, "--context", "nope"}, ExitUsage, "loading kubeconfig"},
		{"no cluster configured", []string{"certs", "verify", "--kubeconfig", empty}, ExitUnreachable, "cannot reach the API server"},
		{"a failed check", []string{"certs", "verify", "--webhook-configuration", "missing", "--kubeconfig", kc}, ExitFailed, "certificate checks failed"},
		{"locks, API unreachable", []string{"locks", "--kubeconfig", closed}, ExitUnreachable, "cannot reach the API server"},
		{"denials, API unreachable", []string{"denials", "-A", "--kubeconfig", closed}, ExitUnreachable, "cannot reach the API server"},
		{"certs verify, API unreachable", []string{"certs", "verify", "--kubeconfig", closed}, ExitUnreachable, "cannot reach the API server"},
		{"version, API unreachable", []string{"version", "--kubeconfig", closed}, ExitUnreachable, "cannot reach the API server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runPlugin(tc.args...)
			if r.code != tc.code || (tc.says != "" && (r.err == nil || !strings.Contains(r.err.Error(), tc.says))) {
				t.Errorf("exit %d (%v), want %d saying %q\nstdout %s\nstderr %s", r.code, r.err, tc.code, tc.says, r.out, r.errOut)
			}
			if strings.Contains(r.out, "install the chart") && tc.code == ExitUnreachable {
				t.Errorf("an unreachable API server is taken for a missing chart:\n%s", r.out)
			}
		})
	}
}
