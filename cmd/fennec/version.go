package main

import (
	"encoding/json"
	"fmt"
	goruntime "runtime"
	"runtime/debug"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/spf13/cobra"
)

func init() { register(newVersionCmd) }

// version is set at link time: -ldflags "-X main.version=v1.2.3".
var version = "devel"

type versionInfo struct {
	Version    string `json:"version"`
	ABI        int    `json:"abi"`
	Go         string `json:"go"`
	Platform   string `json:"platform"`
	Wazero     string `json:"wazero"`
	Commit     string `json:"commit,omitempty"`
	CUDABuild  bool   `json:"cuda_build"`
	BackendNow string `json:"-"`
}

func currentVersion() versionInfo {
	v := versionInfo{Version: version, ABI: hostfuncs.ABIVersion, Go: goruntime.Version(),
		Platform: goruntime.GOOS + "/" + goruntime.GOARCH, CUDABuild: cudaBuild}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/tetratelabs/wazero" {
				v.Wazero = d.Version
			}
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v.Commit = s.Value
			}
		}
		if v.Version == "devel" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v.Version = bi.Main.Version
		}
	}
	return v
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "version",
		Short: "Print the fennec version, host ABI version and platform",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			v := currentVersion()
			if asJSON {
				return json.NewEncoder(c.OutOrStdout()).Encode(v)
			}
			fmt.Fprintf(c.OutOrStdout(), "fennec %s (host ABI v%d, %s, %s, wazero %s, cuda build: %v)\n",
				v.Version, v.ABI, v.Go, v.Platform, v.Wazero, v.CUDABuild)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
