package admission

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The HELP of the admissions counter lists the decision label's values as
// verdict.decision sets them (it said "admitted" for "allowed").
func TestAdmissionsHelpNamesTheDecisionValues(t *testing.T) {
	ch := make(chan *prometheus.Desc, 1)
	admissions.Describe(ch)
	desc := (<-ch).String()
	values := []string{
		verdict{allowed: true}.decision(),
		verdict{code: 403}.decision(),
		verdict{code: 503}.decision(),
		verdict{allowed: true, warned: true}.decision(),
	}
	want := "(" + strings.Join(values, ", ") + ")"
	if !strings.Contains(desc, want) || strings.Contains(desc, "admitted") {
		t.Errorf("%s; want its help to list %s", desc, want)
	}
}
