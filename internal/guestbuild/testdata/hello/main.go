// Command hello is a minimal reactor used by guestbuild's tests.
package main

//go:wasmexport twice
func twice(x int32) int32 { return 2 * x }

func main() {}
