//go:build cuda

package cuda

import (
	"fmt"
	goruntime "runtime"

	"gorgonia.org/cu"
	"gorgonia.org/cu/nvrtc"
)

// Probe reports the driver, the libraries and the devices without starting
// a backend. Its error (no driver, no device) is the reason a CUDA build
// falls back to the CPU.
func Probe() (Info, error) {
	info := Info{Toolkit: versionString(toolkitVersion()), Devices: []DeviceInfo{}}
	if maj, min, err := nvrtc.Version(); err == nil {
		info.NVRTC = fmt.Sprintf("%d.%d", maj, min)
	}
	if v, err := cublasVersion(); err == nil {
		info.CuBLAS = fmt.Sprintf("%d.%d.%d", v/10000, v/100%100, v%100)
	}
	info.Driver = versionString(cu.Version()) // cuDriverGetVersion needs no cuInit
	if err := initDriver(); err != nil {
		return info, fmt.Errorf("cuda: no usable driver: %w", err)
	}
	n, err := cu.NumDevices()
	if err != nil {
		return info, fmt.Errorf("cuda: counting devices: %w", err)
	}
	for i := 0; i < n; i++ {
		d, err := cu.GetDevice(i)
		if err != nil {
			return info, fmt.Errorf("cuda: device %d: %w", i, err)
		}
		di, err := describe(d, i, true)
		if err != nil {
			return info, err
		}
		info.Devices = append(info.Devices, di)
	}
	if n == 0 {
		return info, fmt.Errorf("cuda: the driver reports no devices")
	}
	return info, nil
}

// describe reads a device's name, capability and memory; with free set it
// also retains the primary context briefly to read the free memory.
func describe(d cu.Device, ordinal int, free bool) (DeviceInfo, error) {
	di := DeviceInfo{Ordinal: ordinal}
	var err error
	if di.Name, err = d.Name(); err != nil {
		return di, fmt.Errorf("cuda: device %d name: %w", ordinal, err)
	}
	if di.TotalBytes, err = d.TotalMem(); err != nil {
		return di, fmt.Errorf("cuda: device %d memory: %w", ordinal, err)
	}
	maj, err := d.Attribute(cu.ComputeCapabilityMajor)
	if err != nil {
		return di, fmt.Errorf("cuda: device %d capability: %w", ordinal, err)
	}
	min, err := d.Attribute(cu.ComputeCapabilityMinor)
	if err != nil {
		return di, fmt.Errorf("cuda: device %d capability: %w", ordinal, err)
	}
	di.ComputeCapability = fmt.Sprintf("%d.%d", maj, min)
	if di.Multiprocessors, err = d.Attribute(cu.MultiprocessorCount); err != nil {
		return di, fmt.Errorf("cuda: device %d multiprocessors: %w", ordinal, err)
	}
	if free {
		goruntime.LockOSThread()
		defer goruntime.UnlockOSThread()
		if ctx, err := d.RetainPrimaryCtx(); err == nil {
			prev, _ := cu.CurrentContext()
			if cu.SetCurrentContext(ctx) == nil {
				if f, _, err := cu.MemInfo(); err == nil {
					di.FreeBytes = f
				}
			}
			cu.SetCurrentContext(prev)
			d.ReleasePrimaryCtx()
		}
	}
	return di, nil
}
