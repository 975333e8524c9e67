package admission_test

import (
	"testing"
	"time"

	"github.com/targetlock/targetlock/pkg/admission"
)

// TestSetupOptionsValidate: the rules every webhook runs under, whether
// its options come from flags or from a test.
func TestSetupOptionsValidate(t *testing.T) {
	valid := func() admission.SetupOptions {
		return admission.SetupOptions{LeaseNamespace: "ns", Identity: "webhook-0",
			LeaseDuration: admission.MinLeaseTime, ClaimGrace: admission.MinLeaseTime, MaxAttempts: 1}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
	for name, spoil := range map[string]func(*admission.SetupOptions){
		"no lease namespace":  func(o *admission.SetupOptions) { o.LeaseNamespace = "" },
		"no identity":         func(o *admission.SetupOptions) { o.Identity = "" },
		"sub-second grace":    func(o *admission.SetupOptions) { o.ClaimGrace = 500 * time.Millisecond },
		"sub-second duration": func(o *admission.SetupOptions) { o.LeaseDuration = 500 * time.Millisecond },
		"no attempts":         func(o *admission.SetupOptions) { o.MaxAttempts = 0 },
		"a read verb":         func(o *admission.SetupOptions) { o.Trust.Verb = "get" },
	} {
		o := valid()
		spoil(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
