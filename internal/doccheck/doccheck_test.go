// Package doccheck holds tests that keep the documentation honest about the
// repository: every file it links to or names by path exists, and the
// package diagram of docs/ARCHITECTURE.md matches the imports.
package doccheck

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	mdLink   = regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	codePath = regexp.MustCompile("`((?:[a-z0-9_.-]+/)+[A-Za-z0-9_.-]+\\.(?:go|md|sh|toml|py|h|c)|[A-Za-z0-9_-]+\\.md)`")
)

// TestDocsNameExistingFiles: relative links and backticked repository
// paths in README.md, BENCHMARKS.md and docs/*.md name files that exist.
func TestDocsNameExistingFiles(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	docs, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	docs = append(docs, filepath.Join(root, "README.md"), filepath.Join(root, "BENCHMARKS.md"))
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, doc)
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				if _, err := os.Stat(filepath.Join(filepath.Dir(doc), target)); err != nil {
					t.Errorf("%s:%d: link to %s, which does not exist", rel, i+1, target)
				}
			}
			for _, m := range codePath.FindAllStringSubmatch(line, -1) {
				p := m[1]
				if strings.HasPrefix(p, "../") || strings.Contains(p, "...") {
					continue // outside the repository (../shared) or a pattern
				}
				_, errRoot := os.Stat(filepath.Join(root, p))
				_, errHere := os.Stat(filepath.Join(filepath.Dir(doc), p))
				_, errDocs := os.Stat(filepath.Join(root, "docs", p))
				if errRoot != nil && errHere != nil && errDocs != nil {
					t.Errorf("%s:%d: names %s, which does not exist", rel, i+1, p)
				}
			}
		}
	}
}
