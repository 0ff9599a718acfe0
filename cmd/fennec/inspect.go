package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/fennec-edge/fennec/runtime"
	"github.com/spf13/cobra"
)

func init() { register(newInspectCmd) }

func newInspectCmd() *cobra.Command {
	var (
		asJSON   bool
		manifest string
	)
	c := &cobra.Command{
		Use:   "inspect MODULE.wasm",
		Short: "Show a module's imports, exports, the capabilities it needs and its size",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			wasm, err := os.ReadFile(args[0])
			if err != nil {
				return &exitError{exitBadInput, err}
			}
			ctx := context.Background()
			eng, err := runtime.New(ctx, runtime.Config{NoDiskCache: true})
			if err != nil {
				return err
			}
			defer eng.Close(ctx)
			info, err := eng.Inspect(ctx, wasm)
			if err != nil {
				return &exitError{exitBadInput, fmt.Errorf("%s: %w", args[0], err)}
			}
			// The manifest, when there is one, is validated and checked
			// against the module.
			var man *runtime.Manifest
			var manErr error
			if manifest == "" {
				manifest, _ = runtime.FindManifest(args[0])
			}
			if manifest != "" {
				m, err := runtime.ReadManifest(manifest)
				if err == nil {
					if mod, cerr := eng.Compile(ctx, wasm, m); cerr != nil {
						err = cerr
					} else {
						mod.Close(ctx)
					}
				}
				man, manErr = &m, err
			}
			if asJSON {
				out := struct {
					runtime.ModuleInfo
					Manifest      *runtime.Manifest `json:"manifest,omitempty"`
					ManifestError string            `json:"manifest_error,omitempty"`
				}{ModuleInfo: info, Manifest: man}
				if manErr != nil {
					out.ManifestError = manErr.Error()
				}
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			w := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			kind := "reactor"
			if info.Command {
				kind = "command (not loadable: build as a reactor)"
			} else if !info.Reactor {
				kind = "plain module"
			}
			fmt.Fprintf(w, "module\t%s\n", args[0])
			fmt.Fprintf(w, "size\t%d bytes (%.1f MiB)\n", info.Size, float64(info.Size)/(1<<20))
			fmt.Fprintf(w, "kind\t%s\n", kind)
			max := "none declared"
			if info.MemoryMax > 0 {
				max = fmt.Sprint(info.MemoryMax)
			}
			fmt.Fprintf(w, "memory\t%d pages initial, max %s\n", info.MemoryMin, max)
			caps := "none (core only)"
			if len(info.Capabilities) > 0 {
				caps = strings.Join(info.Capabilities, ", ")
			}
			fmt.Fprintf(w, "needs\t%s\n", caps)
			if len(info.Unknown) > 0 {
				fmt.Fprintf(w, "unknown imports\t%s (this host cannot load it)\n", strings.Join(info.Unknown, ", "))
			}
			w.Flush()
			fmt.Fprintln(c.OutOrStdout(), "\nimports:")
			for _, f := range info.Imports {
				fmt.Fprintf(w, "  %s.%s\t%s\n", f.Module, f.Name, f.Signature)
			}
			w.Flush()
			fmt.Fprintln(c.OutOrStdout(), "\nexports:")
			for _, f := range info.Exports {
				fmt.Fprintf(w, "  %s\t%s\n", f.Name, f.Signature)
			}
			w.Flush()
			switch {
			case manifest == "":
				fmt.Fprintln(c.OutOrStdout(), "\nmanifest: none found beside the module")
			case manErr != nil:
				fmt.Fprintf(c.OutOrStdout(), "\nmanifest %s: NOT LOADABLE: %v\n", manifest, manErr)
			default:
				fmt.Fprintf(c.OutOrStdout(), "\nmanifest %s: %s %s, entrypoints %s, loads on this host\n", manifest, man.Name, man.Version, strings.Join(man.Entrypoints, ", "))
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().StringVar(&manifest, "manifest", "", "manifest to check against the module (default: beside it)")
	return c
}
