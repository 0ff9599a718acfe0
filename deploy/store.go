package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/fennec-edge/fennec/internal/atomicfile"
)

// Store keeps a device's bundles on disk so that it restarts, offline, on
// what it last ran. Layout:
//
//	DIR/bundles/DIGEST.fbundle   verified bundles, written atomically
//	DIR/state.json               which bundle is current, which is the previous good one
//
// A swap writes the new bundle file first and then replaces state.json
// (both via internal/atomicfile: temp file, fsync, rename, fsync dir); old
// bundle files are removed only after the new state is durable. So at any
// instant, including a kill -9 between any two system calls, state.json
// names bundle files that exist and are complete: the old version or the
// new one is runnable, never neither.
type Store struct {
	dir string
	mu  sync.Mutex
	st  StoreState
}

// StoredVersion names one stored bundle.
type StoredVersion struct {
	Digest  string `json:"digest"`
	Name    string `json:"name"`
	Version string `json:"version"`
}

// StoreState is the content of state.json.
type StoreState struct {
	Current  *StoredVersion `json:"current,omitempty"`
	Previous *StoredVersion `json:"previous,omitempty"` // the last good version before Current
	// Bad lists digests that failed on this device (health check, crash
	// loop); the agent does not install them again.
	Bad []string `json:"bad,omitempty"`
}

const maxState = 1 << 20

// OpenStore opens (creating, mode 0700) the store at dir and removes
// temporary files left by an interrupted write.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "bundles"), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s := &Store{dir: dir}
	for _, d := range []string{dir, filepath.Join(dir, "bundles")} {
		ents, err := os.ReadDir(d)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") && strings.Contains(e.Name(), ".tmp-") {
				os.Remove(filepath.Join(d, e.Name()))
			}
		}
	}
	data, _, err := readSmallN(filepath.Join(dir, "state.json"), maxState)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("store: %w", err)
	default:
		if err := json.Unmarshal(data, &s.st); err != nil {
			return nil, fmt.Errorf("store: %s: %w", filepath.Join(dir, "state.json"), err)
		}
		for _, v := range []*StoredVersion{s.st.Current, s.st.Previous} {
			if v != nil && !validDigest(v.Digest) {
				return nil, fmt.Errorf("store: state.json: invalid digest %q", v.Digest)
			}
		}
	}
	return s, nil
}

func readSmallN(path string, max int64) ([]byte, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if fi.Size() > max {
		return nil, nil, fmt.Errorf("%s: %d bytes exceeds %d", path, fi.Size(), max)
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil && fi.Size() > 0 {
		return nil, nil, err
	}
	return b, fi, nil
}

func validDigest(d string) bool {
	if len(d) != 64 {
		return false
	}
	for i := 0; i < len(d); i++ {
		if !(d[i] >= '0' && d[i] <= '9' || d[i] >= 'a' && d[i] <= 'f') {
			return false
		}
	}
	return true
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// State returns a copy of the current state.
func (s *Store) State() StoreState {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Bad = slices.Clone(st.Bad)
	return st
}

func (s *Store) bundlePath(digest string) string {
	return filepath.Join(s.dir, "bundles", digest+".fbundle")
}

// Put writes b's bundle file (if it is not already stored). It does not
// change which version is current.
func (s *Store) Put(b *Bundle) error {
	p := s.bundlePath(b.Digest())
	if _, err := os.Stat(p); err == nil {
		if _, err := s.Load(b.Digest()); err == nil {
			return nil
		}
	}
	raw, err := b.Encode()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(p, raw, 0o600)
}

// Load reads a stored bundle and checks that its content matches its
// digest and file name.
func (s *Store) Load(digest string) (*Bundle, error) {
	if !validDigest(digest) {
		return nil, fmt.Errorf("store: invalid digest %q", digest)
	}
	b, err := ReadBundle(s.bundlePath(digest), Limits{})
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if b.Digest() != digest || !b.contentMatches() {
		return nil, fmt.Errorf("store: %s: content does not match its digest", s.bundlePath(digest))
	}
	return b, nil
}

// Commit makes the stored bundle b current; the version current until now
// becomes the previous good one. Bundle files no longer referenced are
// removed after the new state is durable.
func (s *Store) Commit(b *Bundle) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := os.Stat(s.bundlePath(b.Digest())); err != nil {
		return fmt.Errorf("store: commit of a bundle that was not Put: %w", err)
	}
	st := s.st
	nv := &StoredVersion{Digest: b.Digest(), Name: b.Name(), Version: b.Version()}
	if st.Current == nil || st.Current.Digest != nv.Digest {
		st.Previous = st.Current
	}
	st.Current = nv
	if err := s.writeState(st); err != nil {
		return err
	}
	s.gc()
	return nil
}

// Revert makes the previous good version current again (after a failed
// health check or a crash loop of the current one), marks the current one
// bad and returns the version now current.
func (s *Store) Revert() (*StoredVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	if st.Previous == nil {
		return nil, errors.New("store: no previous version to roll back to")
	}
	if st.Current != nil && !slices.Contains(st.Bad, st.Current.Digest) {
		st.Bad = append(slices.Clone(st.Bad), st.Current.Digest)
	}
	st.Current, st.Previous = st.Previous, nil
	if err := s.writeState(st); err != nil {
		return nil, err
	}
	s.gc()
	v := *st.Current
	return &v, nil
}

// MarkBad records that digest failed on this device.
func (s *Store) MarkBad(digest string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.st.Bad, digest) {
		return nil
	}
	st := s.st
	st.Bad = append(slices.Clone(st.Bad), digest)
	if len(st.Bad) > 64 {
		st.Bad = st.Bad[len(st.Bad)-64:]
	}
	return s.writeState(st)
}

// IsBad reports whether digest failed on this device before.
func (s *Store) IsBad(digest string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Contains(s.st.Bad, digest)
}

func (s *Store) writeState(st StoreState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(s.dir, "state.json"), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	s.st = st
	return nil
}

// gc removes bundle files that are neither current nor previous.
func (s *Store) gc() {
	keep := map[string]bool{}
	for _, v := range []*StoredVersion{s.st.Current, s.st.Previous} {
		if v != nil {
			keep[v.Digest+".fbundle"] = true
		}
	}
	ents, err := os.ReadDir(filepath.Join(s.dir, "bundles"))
	if err != nil {
		return
	}
	for _, e := range ents {
		if !keep[e.Name()] && strings.HasSuffix(e.Name(), ".fbundle") {
			os.Remove(filepath.Join(s.dir, "bundles", e.Name()))
		}
	}
}

// Runnable returns the bundle to start from: the current one if it loads
// intact, otherwise the previous one. It returns nil, nil on an empty store.
func (s *Store) Runnable() (*Bundle, error) {
	st := s.State()
	var errs []error
	for _, v := range []*StoredVersion{st.Current, st.Previous} {
		if v == nil {
			continue
		}
		b, err := s.Load(v.Digest)
		if err == nil {
			return b, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, nil
	}
	return nil, errors.Join(errs...)
}
