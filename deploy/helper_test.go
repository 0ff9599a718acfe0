package deploy

import (
	"bytes"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain lets a test re-execute its own binary as a helper process (for
// kill -9 tests): FENNEC_DEPLOY_HELPER names the helper, FENNEC_DEPLOY_ARG
// its argument.
func TestMain(m *testing.M) {
	switch os.Getenv("FENNEC_DEPLOY_HELPER") {
	case "":
		os.Exit(m.Run())
	case "audit":
		helperAudit(os.Getenv("FENNEC_DEPLOY_ARG"))
	case "store":
		helperStore(os.Getenv("FENNEC_DEPLOY_ARG"))
	case "deployer":
		helperDeployer(os.Getenv("FENNEC_DEPLOY_ARG"))
	}
	os.Exit(0)
}

// runKilled starts the helper, lets it run for d after it prints its first
// line, kills it with SIGKILL and returns what it printed.
func runKilled(t *testing.T, helper, arg string, d time.Duration) []byte {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FENNEC_DEPLOY_HELPER="+helper, "FENNEC_DEPLOY_ARG="+arg)
	var out syncBuffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for out.Len() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(d)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	return out.Bytes()
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}

func osMkdirAll(dir string) error { return os.MkdirAll(dir, 0o700) }
