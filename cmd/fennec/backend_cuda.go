//go:build cuda

package main

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/fennec-edge/fennec/gpu"
	"github.com/fennec-edge/fennec/gpu/cuda"
)

// cudaBuild reports whether this binary was built with -tags cuda.
const cudaBuild = true

var (
	cudaOnce    sync.Once
	cudaBackend *cuda.Backend
	cudaErr     error
)

// startCUDA starts the process's one CUDA backend (compiling its kernels
// takes about a second), or returns why it cannot.
func startCUDA() (*cuda.Backend, error) {
	cudaOnce.Do(func() { cudaBackend, cudaErr = cuda.New(cuda.Config{}) })
	return cudaBackend, cudaErr
}

// selectBackend returns the CUDA backend when a driver and a device are
// present, else the CPU backend, with the reason, and logs the choice.
func selectBackend(log *slog.Logger) (gpu.Backend, string) {
	return pickBackend(log, func() (gpu.Backend, string, error) {
		b, err := startCUDA()
		if err != nil {
			return nil, "", err
		}
		d := b.Device()
		return b, fmt.Sprintf("CUDA device %d: %s (compute %s, %d SMs, %s), kernels for %s",
			d.Ordinal, d.Name, d.ComputeCapability, d.Multiprocessors, gib(d.TotalBytes), b.Arch()), nil
	})
}

// probeCUDA describes the driver and devices for `fennec info`.
func probeCUDA() cudaReport {
	info, err := cuda.Probe()
	r := cudaReport{Built: true, Available: err == nil, Driver: info.Driver, Toolkit: info.Toolkit,
		NVRTC: info.NVRTC, CuBLAS: info.CuBLAS, Devices: []cudaDevice{}}
	if err != nil {
		r.Error = err.Error()
	}
	for _, d := range info.Devices {
		r.Devices = append(r.Devices, cudaDevice{Ordinal: d.Ordinal, Name: d.Name, ComputeCapability: d.ComputeCapability,
			Multiprocessors: d.Multiprocessors, TotalBytes: d.TotalBytes, FreeBytes: d.FreeBytes})
	}
	return r
}
