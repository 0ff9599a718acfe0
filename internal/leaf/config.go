package leaf

import (
	"regexp"
	"strings"

	"github.com/fennec-edge/fennec/internal/config"
)

// ParseConfig reads a leaf node's configuration from TOML (the fields of
// Config: device, hub, dir, listen, subjects, max_bytes, max_age = "168h",
// reconnect = "1s") and validates it as New does; errors name source, the
// line and the field.
func ParseConfig(data []byte, source string) (Config, error) {
	var c Config
	md, err := config.DecodeTOML(data, source, &c)
	if err != nil {
		return Config{}, err
	}
	if u := md.Undecoded(); len(u) > 0 {
		k := u[0].String()
		return Config{}, &config.FileError{Source: source, Line: line(data, k), Field: k, Msg: "unknown field"}
	}
	if _, err := New(c); err != nil {
		// New names the field as "leaf config: FIELD..." or "FIELD[i]".
		msg := strings.TrimPrefix(err.Error(), "leaf config: ")
		field := msg
		if i := strings.IndexAny(field, ":[ "); i >= 0 {
			field = field[:i]
		}
		return Config{}, &config.FileError{Source: source, Line: line(data, field), Field: field, Msg: msg}
	}
	return c, nil
}

// line is the 1-based line that sets key at the top level (0 when absent).
func line(data []byte, key string) int {
	re := regexp.MustCompile(`^\s*"?` + regexp.QuoteMeta(key) + `"?\s*=`)
	for i, l := range strings.Split(string(data), "\n") {
		if re.MatchString(l) {
			return i + 1
		}
	}
	return 0
}
