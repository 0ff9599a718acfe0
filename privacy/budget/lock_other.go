//go:build !unix

package budget

// lockFile is a no-op where flock is unavailable; one process per ledger is
// then the operator's responsibility.
func lockFile(string) (func() error, error) { return func() error { return nil }, nil }
