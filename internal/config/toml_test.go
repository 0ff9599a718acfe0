package config

import (
	"errors"
	"testing"
)

func TestDecodeTOML(t *testing.T) {
	type file struct {
		A struct {
			N int    `toml:"n"`
			S string `toml:"s"`
		} `toml:"a"`
	}
	for _, c := range []struct {
		name, src, want string
	}{
		{"syntax", "[a]\nn = = 3\n", `f.toml:2: field "a.n": `},
		{"type", "[a]\ns = 3\n", `f.toml:2: field "a.s": incompatible types`},
		{"ok", "[a]\nn = 3\n", ""},
	} {
		var f file
		_, err := DecodeTOML([]byte(c.src), "f.toml", &f)
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var fe *FileError
		if !errors.As(err, &fe) || len(err.Error()) < len(c.want) || err.Error()[:len(c.want)] != c.want {
			t.Errorf("%s: %v, want it to start with %q", c.name, err, c.want)
		}
	}
}
