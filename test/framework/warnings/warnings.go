// Package warnings collects the Warning headers the API server returns
// (an admission webhook's warnings among them), for a rest.Config's
// WarningHandlerWithContext.
package warnings

import (
	"context"
	"slices"
	"strings"
	"sync"
)

// Collector records every warning it is handed; safe for concurrent use.
type Collector struct {
	mu  sync.Mutex
	got []string
}

// HandleWarningHeaderWithContext records text.
func (c *Collector) HandleWarningHeaderWithContext(_ context.Context, _ int, _, text string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, text)
}

// Take returns the warnings recorded since the last Take.
func (c *Collector) Take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := c.got
	c.got = nil
	return got
}

// Contain reports whether a warning recorded so far contains s.
func (c *Collector) Contain(s string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.ContainsFunc(c.got, func(t string) bool { return strings.Contains(t, s) })
}
