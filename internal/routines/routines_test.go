package routines

import (
	"sync/atomic"
	"testing"
)

func TestGroupWaitsAndRefusesAfterClose(t *testing.T) {
	var g Group
	var done atomic.Int32
	release := make(chan struct{})
	for range 3 {
		if !g.Go(func() { <-release; done.Add(1) }) {
			t.Fatal("Go refused before Close")
		}
	}
	// A goroutine that starts another while the group is open.
	started := make(chan struct{})
	g.Go(func() { g.Go(func() { <-release; done.Add(1) }); close(started) })
	<-started
	close(release)
	g.CloseAndWait()
	if n := done.Load(); n != 4 {
		t.Fatalf("%d goroutines finished before Wait returned, want 4", n)
	}
	if g.Go(func() {}) {
		t.Fatal("Go started a goroutine after Close")
	}
}
