// Command gen refreshes the prebuilt guests embedded in the fennec binary
// (internal/guests/prebuilt): it builds every guest from the source tree
// and writes NAME.wasm.gz, NAME.toml and index.json. A guest whose bytes
// have not changed keeps its .wasm.gz file untouched, so regenerating with
// another gzip does not churn the repository. A guest whose toolchain is
// missing (clang for the C guest) keeps its previous entry, with a warning.
//
// Run it as `go generate ./internal/guests` from the source tree.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fennec-edge/fennec/internal/atomicfile"
	"github.com/fennec-edge/fennec/internal/guestbuild"
	"github.com/fennec-edge/fennec/internal/guests"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	root, err := guests.Root()
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "internal", "guests", "prebuilt")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	old, _ := guests.PrebuiltIndex() // the index compiled into this generator, if any
	var ix guests.Index
	for _, name := range guests.Names() {
		e, err := one(ctx, root, dir, name, old)
		if errors.Is(err, guestbuild.ErrNoClang) {
			prev, ok := old.Find(name)
			if !ok {
				return fmt.Errorf("%s: %w (and no previous prebuilt copy to keep)", name, err)
			}
			fmt.Fprintf(os.Stderr, "gen: %s: kept the previous prebuilt copy: %v\n", name, err)
			ix.Guests = append(ix.Guests, prev)
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		ix.Guests = append(ix.Guests, e)
	}
	b, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, guests.IndexFile), append(b, '\n'), 0o644)
}

func one(ctx context.Context, root, dir, name string, old guests.Index) (guests.Entry, error) {
	g, err := guests.Build(ctx, name)
	if err != nil {
		return guests.Entry{}, err
	}
	src := filepath.Join(root, guests.Sources[name])
	e := guests.Entry{Name: name, Size: len(g.Wasm)}
	sum := sha256.Sum256(g.Wasm)
	e.SHA256 = hex.EncodeToString(sum[:])
	if strings.HasSuffix(src, ".c") {
		if e.Source, err = guestbuild.CSourceDigest(src); err != nil {
			return e, err
		}
		if e.Toolchain, err = guestbuild.ClangVersion(ctx); err != nil {
			return e, err
		}
	} else {
		if e.Source, err = guestbuild.GoSourceDigest(ctx, src); err != nil {
			return e, err
		}
		if e.Toolchain, err = guestbuild.GoVersion(ctx); err != nil {
			return e, err
		}
	}
	gzPath := filepath.Join(dir, name+".wasm.gz")
	prev, had := old.Find(name)
	if _, statErr := os.Stat(gzPath); !had || prev.SHA256 != e.SHA256 || statErr != nil {
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err != nil {
			return e, err
		}
		if _, err := zw.Write(g.Wasm); err != nil {
			return e, err
		}
		if err := zw.Close(); err != nil {
			return e, err
		}
		if err := atomicfile.WriteFile(gzPath, buf.Bytes(), 0o644); err != nil {
			return e, err
		}
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, name+".toml"), g.ManifestTOML, 0o644); err != nil {
		return e, err
	}
	fmt.Printf("%-18s %8d bytes  sha256 %s  %s\n", name, e.Size, e.SHA256[:16], e.Toolchain)
	return e, nil
}
