package plugin

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/targetlock/targetlock/pkg/admission"
)

// countingReader counts the list calls and the Events the API server
// returns to them.
type countingReader struct {
	client.Reader
	calls, events int
}

func (c *countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	err := c.Reader.List(ctx, list, opts...)
	c.calls++
	if l, ok := list.(*eventsv1.EventList); ok {
		c.events += len(l.Items)
	}
	return err
}

func event(ns, name, controller, typ string) *eventsv1.Event {
	return &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Namespace: ns, Name: name},
		EventTime:           metav1.NewMicroTime(time.Now()),
		ReportingController: controller, ReportingInstance: controller + "-0",
		Action: admission.EventAction, Reason: admission.ReasonResourceBusy, Type: typ, Note: "busy",
		Regarding: corev1.ObjectReference{Kind: "WorkflowExecution", Namespace: ns, Name: "w"},
	}
}

// The API server selects the webhook's Events and returns them a chunk
// at a time: 13 denials at --chunk-size 4 take 4 calls, and the unrelated
// Events never leave the API server.
func TestDenialsPaging(t *testing.T) {
	env, kc := cluster(t)
	ns := namespace(t, env.Client, "paging")
	const denials, chunk = 13, 4
	for i := range denials {
		mustCreate(t, env.Client, event(ns, fmt.Sprintf("denial-%d", i), admission.ReportingController, corev1.EventTypeWarning))
	}
	mustCreate(t, env.Client,
		event(ns, "other-controller", "someone-else", corev1.EventTypeWarning),
		event(ns, "normal", admission.ReportingController, corev1.EventTypeNormal))

	reader := &countingReader{Reader: env.Client}
	ds, err := EventSource{Reader: reader, ChunkSize: chunk}.Denials(context.Background(), ns)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != denials || reader.calls != 4 || reader.events != denials {
		t.Errorf("%d denials in %d calls returning %d Events; want %d in 4 returning %d", len(ds), reader.calls, reader.events, denials, denials)
	}

	r := against(kc, "denials", "-n", ns, "--chunk-size", fmt.Sprint(chunk), "-o", "name")
	if r.code != ExitOK || strings.Count(r.out, "event.events.k8s.io/denial-") != denials || strings.Contains(r.out, "other") {
		t.Errorf("denials -o name: %d %v\n%s", r.code, r.err, r.out)
	}
	list := decodeList(t, against(kc, "denials", "-n", ns, "--chunk-size", "5", "-o", "json").out)
	if len(list.Items) != denials {
		t.Errorf("-o json: %d items, want %d", len(list.Items), denials)
	}
	if r = against(kc, "denials", "-n", ns, "--no-headers"); strings.Contains(r.out, "LAST SEEN") || strings.Count(r.out, "\n") != denials {
		t.Errorf("--no-headers:\n%s", r.out)
	}
}
