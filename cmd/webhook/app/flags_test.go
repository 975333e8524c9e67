package app_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/targetlock/targetlock/internal/kubeflags"
	"github.com/targetlock/targetlock/internal/plugin"
	"github.com/targetlock/targetlock/pkg/admission"
	"github.com/targetlock/targetlock/pkg/lease"
	"github.com/targetlock/targetlock/test/framework/testenv"
)

func TestHelpDocumentsEveryFlag(t *testing.T) {
	out, err := runCmd("--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"-kubeconfig", "-lease-namespace", "POD_NAMESPACE", "-identity", "POD_NAME", "-lease-duration",
		"-claim-grace", "-enforcement", "warn", "-policy-reports", "openreports.io", "-cert-dir", "-client-ca-file", "-port", "-host", "-metrics-bind-address", "-health-probe-bind-address", "denials"} {
		if !strings.Contains(out, f) {
			t.Errorf("--help does not mention %s", f)
		}
	}
	out, err = runCmd("denials", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"-namespace", "-target", "-since", "-output", "json", "-kubeconfig"} {
		if !strings.Contains(out, f) {
			t.Errorf("denials --help does not mention %s", f)
		}
	}
	for _, args := range [][]string{
		{"--no-such-flag"},
		{"--lease-namespace", "x", "--claim-grace", "500ms"},
		{"--lease-namespace", "x", "--max-attempts", "0"},
		{"--lease-namespace", ""},
		{"denials", "stray-argument"},
	} {
		if _, err := runCmd(args...); err == nil {
			t.Errorf("%v was accepted", args)
		}
	}
}

// TestHelpShowsDefaults: --help shows the defaults the flags bind, the
// named constants of the packages that own them.
func TestHelpShowsDefaults(t *testing.T) {
	out, err := runCmd("--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{
		fmt.Sprintf("(default %d)", admission.DefaultPort),
		fmt.Sprintf("(default %q)", admission.DefaultCertDir),
		fmt.Sprintf("(default %q)", admission.DefaultCertName),
		fmt.Sprintf("(default %q)", admission.DefaultKeyName),
		fmt.Sprintf("(default %d)", admission.DefaultKubeAPIQPS),
		fmt.Sprintf("(default %d)", admission.DefaultKubeAPIBurst),
		fmt.Sprintf("(default %d)", admission.DefaultMaxAttempts),
		fmt.Sprintf("(default %q)", kubeflags.DefaultMetricsAddress),
		fmt.Sprintf("(default %q)", kubeflags.DefaultProbeAddress),
		fmt.Sprintf("(default %s)", lease.DefaultDuration),
		fmt.Sprintf("(default %s)", lease.DefaultClaimGrace),
		"(default true)", // --release-claims
	} {
		if !strings.Contains(out, d) {
			t.Errorf("--help does not show %s", d)
		}
	}
}

// TestReadVerbIsRefused: --authorize-verb must mean write access, or anyone
// who may read an object could hold it; the webhook refuses to start.
func TestReadVerbIsRefused(t *testing.T) {
	for _, verb := range []string{"get", "list", "watch"} {
		_, err := runCmd("--lease-namespace", "x", "--identity", "webhook-0", "--authorize-verb", verb)
		if err == nil || !strings.Contains(err.Error(), "--authorize-verb") || !strings.Contains(err.Error(), "write access") {
			t.Errorf("--authorize-verb %s: %v, want refused as no write access", verb, err)
		}
	}
}

// TestAliasExitCodes: `webhook denials` and `webhook certs verify` return
// the kubectl plugin's exit codes: 2 for usage, 3 for an API server that
// cannot be reached (a kubeconfig naming a closed port).
func TestAliasExitCodes(t *testing.T) {
	kc := testenv.ClosedKubeconfig(t)
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"denials", "stray-argument"}, plugin.ExitUsage},
		{[]string{"certs", "verify", "--no-such-flag"}, plugin.ExitUsage},
		{[]string{"denials", "-A", "--kubeconfig", kc}, plugin.ExitUnreachable},
		{[]string{"certs", "verify", "--kubeconfig", kc}, plugin.ExitUnreachable},
	} {
		if _, err := runCmd(tc.args...); plugin.ExitCode(err) != tc.code {
			t.Errorf("%v: exit %d (%v), want %d", tc.args, plugin.ExitCode(err), err, tc.code)
		}
	}
}

// TestEnforcementIsChecked: --enforcement takes enforce or warn; anything
// else (a typo, another case, empty) stops the webhook at startup naming
// the flag and the values it takes.
func TestEnforcementIsChecked(t *testing.T) {
	for _, v := range []string{"", "Warn", "audit", "dryrun", "enforce "} {
		_, err := runCmd("--lease-namespace", "x", "--identity", "webhook-0", "--enforcement", v)
		if err == nil || !strings.Contains(err.Error(), "--enforcement") || !strings.Contains(err.Error(), "enforce or warn") {
			t.Errorf("--enforcement %q: %v, want refused naming enforce or warn", v, err)
		}
	}
	out, err := runCmd("--help")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `(default "enforce")`) {
		t.Errorf("--help does not show --enforcement's default enforce")
	}
}
