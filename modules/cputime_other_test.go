//go:build !unix

package modules_test

import "time"

// cpuTime is unknown here: the benchmarks report no cpu-rtf.
func cpuTime() time.Duration { return 0 }
