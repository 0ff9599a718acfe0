// Command fennec is the fennec edge runtime: it runs sandboxed Wasm modules,
// coordinates federated training, and benchmarks the device it runs on.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// subcommands are registered by each command's file from init, so that
// commands live beside their own code and main stays small.
var subcommands []func() *cobra.Command

func register(f func() *cobra.Command) { subcommands = append(subcommands, f) }

// exitError carries a process exit code with its message.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// Exit codes a person or a script can act on.
const (
	exitOK       = 0
	exitFailure  = 1 // the operation failed (a module trapped, a round failed)
	exitUsage    = 2 // bad flags or arguments
	exitBadInput = 3 // an input, manifest or module file is malformed
)

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "fennec",
		Short:         "fennec runs sandboxed WebAssembly modules for AI at the edge",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{exitUsage, fmt.Errorf("%w\nsee '%s --help'", err, c.CommandPath())}
	})
	hostConfig = ""
	root.PersistentFlags().StringVar(&hostConfig, "host-config", "",
		"host configuration file: a [limits] table of the ceilings and defaults of what module manifests may ask (see docs/ABI.md)")
	for _, f := range subcommands {
		root.AddCommand(f())
	}
	return root
}

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "fennec:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		os.Exit(exitFailure)
	}
}
