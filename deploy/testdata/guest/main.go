// Command guest is the test module of package deploy. Its behaviour comes
// from the manifest's [env] table, so that one Wasm binary serves as every
// version a test needs:
//
//	VERSION   returned by the "run" entrypoint (CBOR text)
//	HEALTH    "fail": the health entrypoint fails; "trap": it traps
//	RUN       "fail": every "run" call fails; "trap": every one traps (a crash loop)
//	SLEEP_MS  "run" sleeps this long first (to observe in-flight calls)
package main

import (
	"errors"
	"os"
	"strconv"
	"time"

	"github.com/fennec-edge/fennec/sdk"
)

//go:wasmexport health
func health(n int32) int32 {
	return sdk.ServeCBOR(n, func(struct{}) (string, error) {
		switch os.Getenv("HEALTH") {
		case "fail":
			return "", errors.New("health check failed: model not loaded")
		case "trap":
			os.Exit(4) // the process ends: the runtime reports a trap
		}
		return "ok", nil
	})
}

//go:wasmexport run
func run(n int32) int32 {
	return sdk.ServeCBOR(n, func(struct{}) (string, error) {
		if ms, err := strconv.Atoi(os.Getenv("SLEEP_MS")); err == nil && ms > 0 {
			time.Sleep(time.Duration(ms) * time.Millisecond)
		}
		switch os.Getenv("RUN") {
		case "fail":
			return "", errors.New("run failed")
		case "trap":
			os.Exit(3)
		}
		return os.Getenv("VERSION"), nil
	})
}

func main() {}
