package admission

import "time"

// SetClientCARefresh shortens how often the client CA file is re-read, for
// a test; it returns the restore.
func SetClientCARefresh(d time.Duration) (restore func()) {
	old := clientCARefresh
	clientCARefresh = d
	return func() { clientCARefresh = old }
}
