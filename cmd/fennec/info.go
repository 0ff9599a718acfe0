package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/spf13/cobra"
)

func init() { register(newInfoCmd) }

// cudaDevice and cudaReport are the CUDA part of `fennec info`; the cuda
// build fills them from gpu/cuda.Probe (backend_cuda.go), the default build
// says it has no CUDA (backend_nocuda.go).
type cudaDevice struct {
	Ordinal           int    `json:"ordinal"`
	Name              string `json:"name"`
	ComputeCapability string `json:"compute_capability"`
	Multiprocessors   int    `json:"multiprocessors"`
	TotalBytes        int64  `json:"total_bytes"`
	FreeBytes         int64  `json:"free_bytes"`
}

type cudaReport struct {
	Built     bool         `json:"built"`     // built with -tags cuda
	Available bool         `json:"available"` // a driver and a device answered
	Error     string       `json:"error,omitempty"`
	Driver    string       `json:"driver,omitempty"`  // CUDA version the driver supports
	Toolkit   string       `json:"toolkit,omitempty"` // CUDA headers this binary was built with
	NVRTC     string       `json:"nvrtc,omitempty"`
	CuBLAS    string       `json:"cublas,omitempty"`
	Devices   []cudaDevice `json:"devices"`
}

type infoReport struct {
	Version  string     `json:"version"`
	Platform string     `json:"platform"`
	Backend  string     `json:"backend"` // the backend tensor host calls use
	Reason   string     `json:"reason"`
	CPU      cpuReport  `json:"cpu"`
	CUDA     cudaReport `json:"cuda"`
}

type cpuReport struct {
	Threads int    `json:"threads"`
	Kernel  string `json:"sgemm_kernel"`
}

// pickBackend returns the accelerator accel starts, or the CPU backend
// when it cannot start, with the reason either way; it logs the choice.
func pickBackend(log *slog.Logger, accel func() (gpu.Backend, string, error)) (gpu.Backend, string) {
	b, reason, err := accel()
	if err != nil {
		reason = "CUDA unavailable: " + err.Error()
		log.Warn("tensor backend: falling back to the CPU", "backend", "cpu", "reason", reason)
		return gpu.NewCPU(), reason
	}
	log.Info("tensor backend", "backend", b.Name(), "reason", reason)
	return b, reason
}

func gib(n int64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }

func gatherInfo() infoReport {
	v := currentVersion()
	r := infoReport{Version: v.Version, Platform: v.Platform}
	backend, reason := selectBackend(slog.New(slog.NewTextHandler(io.Discard, nil)))
	r.Backend, r.Reason = backend.Name(), reason
	if c, err := gpu.NewCPUWithConfig(gpu.CPUConfig{}); err == nil {
		r.CPU = cpuReport{Threads: c.Threads(), Kernel: c.Kernel()}
	}
	r.CUDA = probeCUDA()
	return r
}

func (r infoReport) text(w io.Writer) {
	fmt.Fprintf(w, "fennec %s (%s)\n", r.Version, r.Platform)
	fmt.Fprintf(w, "backend: %s (%s)\n", r.Backend, r.Reason)
	fmt.Fprintf(w, "cpu:     %d threads, %s SGEMM kernel\n", r.CPU.Threads, r.CPU.Kernel)
	c := r.CUDA
	switch {
	case !c.Built:
		fmt.Fprintf(w, "cuda:    %s\n", c.Error)
		return
	case !c.Available:
		fmt.Fprintf(w, "cuda:    unavailable: %s\n", c.Error)
	default:
		fmt.Fprintf(w, "cuda:    driver %s, built with CUDA %s\n", c.Driver, c.Toolkit)
	}
	var libs []string
	if c.NVRTC != "" {
		libs = append(libs, "NVRTC "+c.NVRTC)
	}
	if c.CuBLAS != "" {
		libs = append(libs, "cuBLAS "+c.CuBLAS)
	}
	if len(libs) > 0 {
		fmt.Fprintf(w, "         %s\n", strings.Join(libs, ", "))
	}
	for _, d := range c.Devices {
		free := ""
		if d.FreeBytes > 0 {
			free = ", " + gib(d.FreeBytes) + " free"
		}
		fmt.Fprintf(w, "device %d: %s, compute %s, %d SMs, %s%s\n", d.Ordinal, d.Name, d.ComputeCapability, d.Multiprocessors, gib(d.TotalBytes), free)
	}
}

func newInfoCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "info",
		Short: "Print the tensor backends: CPU, CUDA devices, memory, driver and CUDA versions, and which backend serves",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			r := gatherInfo()
			if asJSON {
				enc := json.NewEncoder(c.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			r.text(c.OutOrStdout())
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
