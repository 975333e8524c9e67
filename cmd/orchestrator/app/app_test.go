package app

import (
	"bytes"
	"context"
	"flag"
	"strings"
	"testing"
)

func TestHelpDocumentsEveryFlag(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), []string{"--help"}, &out); err != nil {
		t.Fatalf("--help: %v", err)
	}
	fs, _ := flags(&bytes.Buffer{})
	fs.VisitAll(func(f *flag.Flag) {
		if !strings.Contains(out.String(), "-"+f.Name) {
			t.Errorf("--help does not show -%s", f.Name)
		}
		if strings.TrimSpace(f.Usage) == "" {
			t.Errorf("-%s has no usage text", f.Name)
		}
	})
}

func TestBadFlags(t *testing.T) {
	t.Setenv("POD_NAMESPACE", "")
	for _, args := range [][]string{{"--no-such-flag"}, {"--lease-duration=soon"}, {}} {
		if err := Run(context.Background(), args, &bytes.Buffer{}); err == nil {
			t.Errorf("Run(%q): want an error", args)
		}
	}
}
