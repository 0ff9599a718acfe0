//go:build race

package onnx

// raceEnabled: the race detector's instrumentation allocates, so allocation
// counts are not the program's (TestSteadyStateAllocs skips).
const raceEnabled = true
