package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fennec-edge/fennec/deploy"
	"github.com/fennec-edge/fennec/internal/atomicfile"
)

func init() { register(newModuleCmd) }

func newModuleCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "module",
		Short: "Create signing keys and pack, sign, verify and inspect module bundles",
	}
	c.AddCommand(newModuleKeygenCmd(), newModulePackCmd(), newModuleSignCmd(), newModuleVerifyCmd(), newModuleInspectCmd())
	return c
}

func badInput(err error) error { return &exitError{exitBadInput, err} }

func newModuleKeygenCmd() *cobra.Command {
	var role, dir string
	c := &cobra.Command{
		Use:   "keygen NAME",
		Short: "Create an Ed25519 key pair: NAME.key (secret, 0600) and NAME.pub",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			k, err := deploy.GenerateKey(args[0], deploy.Role(role))
			if err != nil {
				return &exitError{exitUsage, err}
			}
			kp, pp, err := deploy.WriteKeyFiles(dir, k)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (secret) and %s\n%s key %s: %s\n", kp, pp, k.Role, k.Name, deploy.FormatKey(k.Public().Key))
			return nil
		},
	}
	c.Flags().StringVar(&role, "role", string(deploy.RolePublisher), "key role: publisher (signs modules) or operator (signs rollbacks)")
	c.Flags().StringVar(&dir, "dir", ".", "directory to write the key files to")
	return c
}

func newModulePackCmd() *cobra.Command {
	var man, wasm, out string
	var models []string
	c := &cobra.Command{
		Use:   "pack --manifest fennec.toml --wasm module.wasm [--model NAME=FILE.onnx] -o module.fbundle",
		Short: "Pack a manifest, a Wasm binary and its models into an unsigned bundle",
		Long: `Pack a manifest and a Wasm binary into an unsigned bundle. Each --model
NAME=FILE.onnx ships a model in the bundle: NAME must be granted by the
manifest's [nn] models, and the bundle's manifest gets the file's SHA-256
pinned in its [nn.sha256] table, so the publisher's signature covers the
model and devices refuse a model whose bytes differ.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if man == "" || wasm == "" || out == "" {
				return &exitError{exitUsage, errors.New("--manifest, --wasm and -o are required")}
			}
			mb, err := os.ReadFile(man)
			if err != nil {
				return badInput(err)
			}
			wb, err := os.ReadFile(wasm)
			if err != nil {
				return badInput(err)
			}
			if err := deploy.CheckManifest(mb, man); err != nil {
				return badInput(err)
			}
			mm := map[string][]byte{}
			for _, spec := range models {
				name, file, okm := strings.Cut(spec, "=")
				if !okm || name == "" || file == "" {
					return &exitError{exitUsage, fmt.Errorf("--model %q: want NAME=FILE.onnx", spec)}
				}
				if _, dup := mm[name]; dup {
					return &exitError{exitUsage, fmt.Errorf("--model %s is given twice", name)}
				}
				data, err := os.ReadFile(file)
				if err != nil {
					return badInput(fmt.Errorf("--model %s: %w", name, err))
				}
				mm[name] = data
			}
			b, err := deploy.PackModels(mb, wb, mm)
			if err != nil {
				return badInput(fmt.Errorf("%s, %s: %w", man, wasm, err))
			}
			raw, err := b.Encode()
			if err != nil {
				return err
			}
			if err := atomicfile.WriteFile(out, raw, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "packed %s %s -> %s (digest %s, unsigned)\n", b.Name(), b.Version(), out, b.Digest())
			for _, name := range slices.Sorted(maps.Keys(b.Models())) {
				fmt.Fprintf(cmd.OutOrStdout(), "model %s: %d bytes, sha256:%s pinned in [nn.sha256]\n", name, len(b.Models()[name]), sha256Hex(b.Models()[name]))
			}
			return nil
		},
	}
	c.Flags().StringVar(&man, "manifest", "", "module manifest (TOML)")
	c.Flags().StringVar(&wasm, "wasm", "", "module binary")
	c.Flags().StringVarP(&out, "output", "o", "", "bundle file to write")
	c.Flags().StringArrayVar(&models, "model", nil, "ship a model in the bundle, NAME=FILE.onnx (repeatable; its digest is pinned in the manifest)")
	return c
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func newModuleSignCmd() *cobra.Command {
	var key, out string
	var rollback bool
	c := &cobra.Command{
		Use:   "sign BUNDLE --key NAME.key [--rollback] [-o OUT]",
		Short: "Add a publisher signature (or, with --rollback, an operator's rollback authorisation) to a bundle",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if key == "" {
				return &exitError{exitUsage, errors.New("--key is required")}
			}
			k, err := deploy.LoadPrivateKey(key)
			if err != nil {
				return badInput(err)
			}
			b, err := deploy.ReadBundle(args[0], deploy.Limits{})
			if err != nil {
				return badInput(err)
			}
			if err := b.Sign(k, rollback); err != nil {
				return badInput(err)
			}
			raw, err := b.Encode()
			if err != nil {
				return err
			}
			if out == "" {
				out = args[0]
			}
			if err := atomicfile.WriteFile(out, raw, 0o644); err != nil {
				return err
			}
			what := "signed"
			if rollback {
				what = "authorised rollback of"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s %s %s with %s key %q (%s)\n", k.Role, what, b.Name(), b.Version(), k.Role, k.Name, deploy.Fingerprint(k.Public().Key))
			return nil
		},
	}
	c.Flags().StringVar(&key, "key", "", "signing key file (NAME.key)")
	c.Flags().BoolVar(&rollback, "rollback", false, "authorise installing this bundle over a newer version (operator key)")
	c.Flags().StringVarP(&out, "output", "o", "", "write the signed bundle here instead of in place")
	return c
}

func newModuleVerifyCmd() *cobra.Command {
	var trustPath, running, auditPath, who string
	c := &cobra.Command{
		Use:   "verify BUNDLE --trust trust.toml [--running VERSION]",
		Short: "Check a bundle as a device would: digest, signatures, trusted keys and version order",
		Long: "Check a bundle as a device would. Exit status 0: accepted; 1: refused (the reason is printed);\n" +
			"3: the trust file or bundle cannot be read. --running VERSION checks the downgrade rule\n" +
			"against a device running that version of the same module.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if trustPath == "" {
				return &exitError{exitUsage, errors.New("--trust is required")}
			}
			tr, err := deploy.LoadTrust(trustPath)
			if err != nil {
				return badInput(err)
			}
			raw, err := os.ReadFile(args[0])
			if err != nil {
				return badInput(err)
			}
			var run deploy.Running
			if running != "" {
				b, err := deploy.DecodeBundle(raw, deploy.Limits{})
				if err == nil {
					run = deploy.Running{Name: b.Name(), Version: running}
				}
			}
			v, verr := tr.VerifyBytes(raw, deploy.Limits{}, run)
			if auditPath != "" {
				log, err := deploy.OpenAudit(auditPath)
				if err != nil {
					return err
				}
				defer log.Close()
				if err := log.Append(deploy.DecisionRecord(who, "verify", raw, v, verr)); err != nil {
					return err
				}
			}
			if verr != nil {
				if _, ok := deploy.IsRefused(verr); ok {
					return &exitError{exitFailure, verr}
				}
				return badInput(verr)
			}
			msg := fmt.Sprintf("ok: %s %s (digest %s) signed by trusted publisher %q", v.Bundle.Name(), v.Bundle.Version(), v.Bundle.Digest(), v.Publisher)
			if v.Rollback {
				msg += fmt.Sprintf("; rollback authorised by operator %q", v.Operator)
			}
			fmt.Fprintln(cmd.OutOrStdout(), msg)
			return nil
		},
	}
	c.Flags().StringVar(&trustPath, "trust", "", "trust file listing publisher and operator keys (TOML)")
	c.Flags().StringVar(&running, "running", "", "version of the same module assumed running, for the downgrade check")
	c.Flags().StringVar(&auditPath, "audit", "", "append the decision to this audit log (JSON lines)")
	c.Flags().StringVar(&who, "who", "cli", "actor recorded in the audit log")
	return c
}

func newModuleInspectCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "inspect BUNDLE",
		Short: "Show a bundle's module, version, digest, sizes and signatures (without verifying them)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := deploy.ReadBundle(args[0], deploy.Limits{})
			if err != nil {
				return badInput(err)
			}
			type sig struct {
				Kind        string `json:"kind"`
				Key         string `json:"key"`
				Fingerprint string `json:"fingerprint"`
			}
			info := struct {
				Name       string         `json:"name"`
				Version    string         `json:"version"`
				Digest     string         `json:"digest"`
				WasmBytes  int            `json:"wasm_bytes"`
				Models     map[string]int `json:"model_bytes,omitempty"`
				Manifest   string         `json:"manifest"`
				Signatures []sig          `json:"signatures"`
			}{Name: b.Name(), Version: b.Version(), Digest: b.Digest(), WasmBytes: len(b.Wasm()), Manifest: string(b.Manifest()), Signatures: []sig{}}
			for name, m := range b.Models() {
				if info.Models == nil {
					info.Models = map[string]int{}
				}
				info.Models[name] = len(m)
			}
			for _, s := range b.Signatures() {
				info.Signatures = append(info.Signatures, sig{s.Kind, deploy.FormatKey(s.Key), deploy.Fingerprint(s.Key)})
			}
			w := cmd.OutOrStdout()
			if asJSON {
				e := json.NewEncoder(w)
				e.SetIndent("", "  ")
				return e.Encode(info)
			}
			fmt.Fprintf(w, "module:   %s\nversion:  %s\ndigest:   sha256:%s\nwasm:     %d bytes\n", info.Name, info.Version, info.Digest, info.WasmBytes)
			for _, name := range slices.Sorted(maps.Keys(info.Models)) {
				fmt.Fprintf(w, "model:    %s, %d bytes (pinned in the manifest)\n", name, info.Models[name])
			}
			if len(info.Signatures) == 0 {
				fmt.Fprintln(w, "signed:   no")
			}
			for _, s := range info.Signatures {
				fmt.Fprintf(w, "signature: %-8s %s (%s)\n", s.Kind, s.Fingerprint, s.Key)
			}
			fmt.Fprintf(w, "manifest:\n  %s\n", strings.ReplaceAll(strings.TrimSpace(info.Manifest), "\n", "\n  "))
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}
