package lease

import (
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

func TestLiveTimeout(t *testing.T) {
	for d, want := range map[time.Duration]time.Duration{
		0:                0, // filled in below: lease.DefaultDuration/4
		2 * time.Second:  time.Second,
		4 * time.Second:  time.Second,
		40 * time.Second: 10 * time.Second,
	} {
		if d == 0 {
			want = 30 * time.Second / 4
		}
		if got := LiveTimeout(d); got != want {
			t.Errorf("LiveTimeout(%v) = %v, want %v", d, got, want)
		}
	}
}

func TestLiveConfigCopies(t *testing.T) {
	cfg := &rest.Config{Host: "https://example.invalid"}
	if got := LiveConfig(cfg, 4*time.Second); got == cfg || cfg.Timeout != 0 || got.Timeout != time.Second {
		t.Fatalf("LiveConfig: got Timeout %v (same object: %v), original Timeout %v; want a copy with 1s", got.Timeout, got == cfg, cfg.Timeout)
	}
}
