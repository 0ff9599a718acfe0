// Package shared finds the folder of data sets and models kept beside the
// repository (../shared: data/, models/), for tests and benchmarks that use
// them and skip without them.
package shared

import (
	"os"
	"path/filepath"
)

// Dir returns ../shared/sub relative to the repository root found from the
// working directory upwards, or "" when it is absent. For "data" the
// environment variable FENNEC_DATA, when set, names the folder instead.
func Dir(sub string) string {
	if sub == "data" {
		if d := os.Getenv("FENNEC_DATA"); d != "" {
			return d
		}
	}
	wd, _ := os.Getwd()
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "..", "shared", sub)
			if _, err := os.Stat(p); err == nil {
				return p
			}
			return ""
		}
		if filepath.Dir(dir) == dir {
			return ""
		}
	}
}
