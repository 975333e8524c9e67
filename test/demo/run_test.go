package main

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

// A small storm through real processes: the summary line must show the
// invariant held and no Lease was left.
func TestDemoStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+"/", "github.com/targetlock/targetlock/cmd/orchestrator", "github.com/targetlock/targetlock/cmd/webhook")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the binaries: %v\n%s", err, out)
	}
	o := defaults()
	o.binDir, o.targets, o.rrsPerTarget, o.directPerTarget = bin, 4, 5, 2
	o.executorDelay, o.timeout, o.keepLogs = 20*time.Millisecond, 3*time.Minute, false
	var out bytes.Buffer
	ok, err := run(context.Background(), o, &out)
	if err != nil || !ok {
		t.Fatalf("demo: ok=%v err=%v\n%s", ok, err, out.String())
	}
	line := regexp.MustCompile(`demo summary: rrs=20 wfes=\d+ max_active_per_target=1 denied=\d+ leaked_leases=0`)
	if !line.Match(out.Bytes()) {
		t.Errorf("no passing summary line in:\n%s", out.String())
	}
	// The admin commands README teaches work on the demo's cluster: the
	// certificates pass and the refused direct CREATEs are listed.
	admin := regexp.MustCompile(`demo admin: certs_verify=pass denials_listed=(\d+)`).FindSubmatch(out.Bytes())
	denied := regexp.MustCompile(`denied=(\d+)`).FindSubmatch(out.Bytes())
	switch {
	case admin == nil || denied == nil:
		t.Errorf("no passing admin line in:\n%s", out.String())
	case string(denied[1]) != "0" && string(admin[1]) == "0":
		t.Errorf("the webhook denied %s CREATEs, denials listed none:\n%s", denied[1], out.String())
	}
}
