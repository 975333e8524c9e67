package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/targetlock/targetlock/test/framework/testenv"
)

// TestMain runs main instead of the tests when asked to, so that a test can
// run the command as a process and read its exit code.
func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv("KUBECTL_TARGETLOCK_ARGS"); ok {
		os.Args = append([]string{"kubectl-targetlock"}, strings.Fields(args)...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// The process exits with the plugin's exit codes.
func TestExitCodes(t *testing.T) {
	kc := testenv.ClosedKubeconfig(t)
	for args, want := range map[string]int{
		"version --client":                0,
		"--version":                       0,
		"locks --no-such-flag":            2,
		"locks --kubeconfig " + kc:        3,
		"certs verify --kubeconfig " + kc: 3,
		"denials -A --kubeconfig " + kc:   3,
	} {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), "KUBECTL_TARGETLOCK_ARGS="+args)
		out, err := cmd.CombinedOutput()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != want {
			t.Errorf("%s: exit %d, want %d\n%s", args, code, want, out)
		}
	}
}
