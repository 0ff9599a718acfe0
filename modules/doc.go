// Package modules holds fennec's example guest modules. Each subdirectory is
// a guest program built with GOOS=wasip1 (or clang for C); this package's
// tests build them and run them through the host runtime.
package modules
