package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/fennec-edge/fennec/nn"
	"github.com/fennec-edge/fennec/nn/onnx"
	"github.com/spf13/cobra"
)

func init() { register(newModelCmd) }

func newModelCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "model",
		Short: "Inspect and run ONNX models on the host's tensor backend",
	}
	c.AddCommand(newModelInspectCmd(), newModelRunCmd(), newModelQuantizeCmd(), newModelBenchCmd())
	return c
}

func loadModel(path string) (*onnx.Model, error) {
	m, err := onnx.Load(path, onnx.Options{})
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, &exitError{exitUsage, err}
		}
		return nil, &exitError{exitBadInput, err}
	}
	return m, nil
}

func newModelInspectCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "inspect MODEL.onnx",
		Short: "Show a model's opset, inputs and outputs (symbolic dims kept), operators, parameters and the nodes this engine cannot run",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			m, err := loadModel(args[0])
			if err != nil {
				return err
			}
			info := m.Info()
			if asJSON {
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			out := c.OutOrStdout()
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "model\t%s\n", args[0])
			fmt.Fprintf(w, "ir version\t%d\n", info.IRVersion)
			fmt.Fprintf(w, "opset\t%d (ai.onnx)\n", info.Opset)
			if info.Producer != "" {
				fmt.Fprintf(w, "producer\t%s\n", info.Producer)
			}
			fmt.Fprintf(w, "parameters\t%d\n", info.Parameters)
			fmt.Fprintf(w, "nodes\t%d\n", info.Nodes)
			fmt.Fprintf(w, "digest\t%s\n", info.Digest)
			for _, e := range info.External {
				fmt.Fprintf(w, "external data\t%s (%d bytes, sha256 %s)\n", e.Location, e.Bytes, e.SHA256)
			}
			w.Flush()
			fmt.Fprintln(out, "\ninputs:")
			for _, v := range info.Inputs {
				fmt.Fprintf(w, "  %s\t%s\t%s\n", v.Name, v.DType, v.ShapeString())
			}
			w.Flush()
			fmt.Fprintln(out, "\noutputs:")
			for i, v := range info.Outputs {
				fmt.Fprintf(w, "  %s\t%s\t%s\tinferred %s\n", v.Name, v.DType, v.ShapeString(), info.Inferred[i].ShapeString())
			}
			w.Flush()
			fmt.Fprintln(out, "\noperators:")
			for _, op := range info.OperatorNames() {
				fmt.Fprintf(w, "  %s\t%d\n", op, info.Operators[op])
			}
			w.Flush()
			if len(info.Unsupported) == 0 {
				fmt.Fprintln(out, "\nunsupported: none (this engine can run every node)")
				return nil
			}
			fmt.Fprintf(out, "\nunsupported: %d node(s)\n", len(info.Unsupported))
			for _, u := range info.Unsupported {
				fmt.Fprintf(w, "  %s\t%s\topset %d\t%s\n", u.Node, u.OpType, u.Opset, u.Reason)
			}
			w.Flush()
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func newModelRunCmd() *cobra.Command {
	var (
		inputs []string
		outDir string
		ef     engineFlags
	)
	c := &cobra.Command{
		Use:   "run MODEL.onnx --input NAME=FILE.npy ... --out DIR",
		Short: "Run a model on NumPy .npy inputs and write each output as DIR/NAME.npy",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if outDir == "" {
				return &exitError{exitUsage, errors.New("--out is required")}
			}
			log, err := ef.logger(c.ErrOrStderr())
			if err != nil {
				return err
			}
			feed := map[string]*nn.Tensor{}
			for _, spec := range inputs {
				name, file, ok := strings.Cut(spec, "=")
				if !ok || name == "" || file == "" {
					return &exitError{exitUsage, fmt.Errorf("--input %q: want NAME=FILE.npy", spec)}
				}
				if _, dup := feed[name]; dup {
					return &exitError{exitUsage, fmt.Errorf("--input %q given twice", name)}
				}
				t, err := nn.ReadNPYFile(file)
				if err != nil {
					return &exitError{exitBadInput, err}
				}
				feed[name] = t
			}
			m, err := onnx.Load(args[0], onnx.Options{Logger: log})
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return &exitError{exitUsage, err}
				}
				return &exitError{exitBadInput, err}
			}
			be, reason := selectBackend(log)
			log.Info("tensor backend", "backend", be.Name(), "reason", reason)
			s, err := onnx.NewSession(m, be)
			if err != nil {
				return &exitError{exitBadInput, err}
			}
			defer s.Close()
			res, err := s.Run(feed)
			if err != nil {
				// A missing or mis-shaped input is the caller's; the rest
				// is the model's.
				return &exitError{exitBadInput, err}
			}
			if err := os.MkdirAll(outDir, 0o755); err != nil {
				return err
			}
			names := make([]string, 0, len(res))
			for k := range res {
				names = append(names, k)
			}
			sort.Strings(names)
			files := outputFiles(names)
			for i, name := range names {
				p := filepath.Join(outDir, files[i])
				if err := nn.WriteNPYFile(p, res[name]); err != nil {
					return err
				}
				fmt.Fprintf(c.OutOrStdout(), "%s\t%v\t%s\n", name, res[name], p)
			}
			st := s.Stats()
			log.Info("copies", "to_backend_bytes", st.BytesToBackend, "from_backend_bytes", st.BytesFromBackend, "backend_calls", st.BackendCalls)
			return nil
		},
	}
	c.Flags().StringArrayVar(&inputs, "input", nil, "a model input as NAME=FILE.npy (repeat for each input)")
	c.Flags().StringVar(&outDir, "out", "", "directory for the outputs, one NAME.npy each")
	c.Flags().StringVar(&ef.logLevel, "log-level", "warn", "log level: debug, info (placement and copies), warn, error")
	c.Flags().StringVar(&ef.logFormat, "log-format", "text", "log format: text or json")
	return c
}

// outputFiles are the .npy file names of the outputs names (sorted): each
// safeFileName, with a -2, -3, ... suffix where two names map to one file
// ("a/b" and "a_b"), so that no output overwrites another.
func outputFiles(names []string) []string {
	used := map[string]bool{}
	out := make([]string, len(names))
	for i, name := range names {
		base := safeFileName(name)
		f := base + ".npy"
		for n := 2; used[strings.ToLower(f)]; n++ {
			f = fmt.Sprintf("%s-%d.npy", base, n)
		}
		used[strings.ToLower(f)] = true
		out[i] = f
	}
	return out
}

// safeFileName maps an ONNX value name (which may hold '/' or ':') to a
// file name inside the output directory.
func safeFileName(name string) string {
	r := strings.NewReplacer("/", "_", "\\", "_", ":", "_", "\x00", "_")
	s := r.Replace(name)
	if s == "" || s == "." || s == ".." {
		s = "_" + s
	}
	return s
}
