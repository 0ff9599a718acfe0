// Package routines starts goroutines that their owner waits for when it
// stops (nats-server's startGoRoutine and its WaitGroup waited for in
// Shutdown): every goroutine a component starts goes through its Group,
// and the component's Close (or Run's return) calls Wait, so nothing it
// started outlives it.
package routines

import "sync"

// Group counts the goroutines it starts. The zero value is ready to use.
type Group struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Go runs f in a new goroutine unless the group is closed; it reports
// whether it did.
func (g *Group) Go(f func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		f()
	}()
	return true
}

// Close makes later calls to Go start nothing.
func (g *Group) Close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// Wait waits for every goroutine started so far. Call Close first when
// the goroutines may start others.
func (g *Group) Wait() { g.wg.Wait() }

// CloseAndWait closes the group and waits for its goroutines.
func (g *Group) CloseAndWait() {
	g.Close()
	g.Wait()
}
