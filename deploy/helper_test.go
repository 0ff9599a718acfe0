package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/internal/testutil"
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
	var out testutil.Buffer
	cmd.Stdout = &out
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err := testutil.Poll(20*time.Second, time.Millisecond, func() error {
		if out.Len() == 0 {
			return fmt.Errorf("helper %s printed nothing", helper)
		}
		return nil
	})
	if err != nil {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		t.Fatal(err)
	}
	time.Sleep(d) // the moment of the kill: random by design, not a wait for a condition
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	return out.Bytes()
}

func osMkdirAll(dir string) error { return os.MkdirAll(dir, 0o700) }
