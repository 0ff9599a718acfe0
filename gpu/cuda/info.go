package cuda

import "fmt"

// DeviceInfo describes one CUDA device as the driver reports it.
type DeviceInfo struct {
	Ordinal           int    `json:"ordinal"`
	Name              string `json:"name"`
	ComputeCapability string `json:"compute_capability"` // "9.0"
	Multiprocessors   int    `json:"multiprocessors"`
	TotalBytes        int64  `json:"total_bytes"`
	FreeBytes         int64  `json:"free_bytes"` // when a context could be made; else 0
}

// Info is what Probe finds: the driver, the libraries this binary loads and
// the devices.
type Info struct {
	// Driver is the CUDA version the driver supports ("12.4"), from
	// cuDriverGetVersion.
	Driver string `json:"driver"`
	// Toolkit is the CUDA version of the headers this binary was built
	// against (CUDA_VERSION).
	Toolkit string `json:"toolkit"`
	NVRTC   string `json:"nvrtc,omitempty"`
	CuBLAS  string `json:"cublas,omitempty"`
	// Devices lists the devices; empty when the driver has none.
	Devices []DeviceInfo `json:"devices"`
}

// versionString formats a CUDA version number (1000*major + 10*minor, as
// cuDriverGetVersion and CUDA_VERSION give it) as "major.minor".
func versionString(v int) string {
	if v <= 0 {
		return "unknown"
	}
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10)
}
