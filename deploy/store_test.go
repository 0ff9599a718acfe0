package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStoreCommitRevert(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := s.Runnable(); b != nil || err != nil {
		t.Fatalf("empty store: %v %v", b, err)
	}
	k := mustKey(t, "acme", RolePublisher)
	var bs []*Bundle
	for i := range 3 {
		b := mustPack(t, "m", fmt.Sprintf("1.0.%d", i), k)
		bs = append(bs, b)
		if err := s.Put(b); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(b); err != nil {
			t.Fatal(err)
		}
	}
	st := s.State()
	if st.Current.Version != "1.0.2" || st.Previous.Version != "1.0.1" {
		t.Fatalf("state %+v", st)
	}
	if _, err := os.Stat(s.bundlePath(bs[0].Digest())); !os.IsNotExist(err) {
		t.Fatal("unreferenced bundle not collected")
	}
	// Reopen: state survives.
	s2, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s2.Runnable()
	if err != nil || b.Version() != "1.0.2" {
		t.Fatalf("reopen: %v %v", b, err)
	}
	v, err := s2.Revert()
	if err != nil || v.Version != "1.0.1" || !s2.IsBad(bs[2].Digest()) {
		t.Fatalf("revert: %+v %v", v, err)
	}
	if _, err := s2.Revert(); err == nil {
		t.Fatal("second revert without a previous version")
	}
	// A corrupted current bundle falls back to the previous one.
	s2.Put(bs[2])
	s2.Commit(bs[2])
	os.WriteFile(s2.bundlePath(bs[2].Digest()), []byte("garbage"), 0o600)
	b, err = s2.Runnable()
	if err != nil || b.Version() != "1.0.1" {
		t.Fatalf("fallback: %v %v", b, err)
	}
	if err := s2.Commit(mustPack(t, "m", "9.9.9", k)); err == nil {
		t.Fatal("commit of a bundle never Put")
	}
}

// TestStoreKillDuringSwap runs swaps in a child process and kills it with
// SIGKILL at random moments. After each kill the store must hold a runnable
// (intact, correctly signed) version that is either the one being replaced
// or the one being installed.
func TestStoreKillDuringSwap(t *testing.T) {
	if os.Getenv("FENNEC_DEPLOY_HELPER") != "" {
		return
	}
	dir := t.TempDir()
	k := mustKey(t, "acme", RolePublisher)
	if _, _, err := WriteKeyFiles(dir, k); err != nil {
		t.Fatal(err)
	}
	storeDir := filepath.Join(dir, "store")
	s, _ := OpenStore(storeDir)
	first := mustPack(t, "m", "0.0.1", k)
	s.Put(first)
	s.Commit(first)
	trust := trustOf([]*PrivateKey{k}, nil)
	last := first.Digest()
	rounds := 12
	if testing.Short() {
		rounds = 4
	}
	for round := range rounds {
		out := runKilled(t, "store", dir, time.Duration(rand.IntN(40))*time.Millisecond)
		// The child prints "begin D" before a swap to D and "done D" after.
		var begun string
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 {
				continue
			}
			switch f[0] {
			case "begin":
				begun = f[1]
			case "done":
				last, begun = f[1], ""
			}
		}
		s, err := OpenStore(storeDir)
		if err != nil {
			t.Fatalf("round %d: reopen: %v", round, err)
		}
		b, err := s.Runnable()
		if err != nil || b == nil {
			t.Fatalf("round %d: nothing runnable: %v", round, err)
		}
		if b.Digest() != s.State().Current.Digest {
			t.Fatalf("round %d: current bundle is damaged", round)
		}
		if _, err := trust.Verify(b, Running{}); err != nil {
			t.Fatalf("round %d: stored bundle fails verification: %v", round, err)
		}
		if d := b.Digest(); d != last && d != begun {
			t.Fatalf("round %d: current %s is neither the old %s nor the new %s", round, d, last, begun)
		}
		last = b.Digest()
		ents, _ := os.ReadDir(filepath.Join(storeDir, "bundles"))
		for _, e := range ents {
			if strings.Contains(e.Name(), ".tmp-") {
				t.Fatalf("round %d: temp file left after reopen: %s", round, e.Name())
			}
		}
	}
}

func helperStore(dir string) {
	k, err := LoadPrivateKey(filepath.Join(dir, "acme.key"))
	if err != nil {
		panic(err)
	}
	s, err := OpenStore(filepath.Join(dir, "store"))
	if err != nil {
		panic(err)
	}
	pad := make([]byte, 256<<10)
	for i := 1; ; i++ {
		for j := range pad {
			pad[j] = byte(i + j)
		}
		b, err := Pack(manifest("m", fmt.Sprintf("1.%d.%d", os.Getpid(), i)), append(append([]byte(nil), testWasm...), pad...))
		if err != nil {
			panic(err)
		}
		if err := b.Sign(k, false); err != nil {
			panic(err)
		}
		if i == 1 {
			os.Stdout.WriteString("ready\n")
		}
		fmt.Printf("begin %s\n", b.Digest())
		if err := s.Put(b); err != nil {
			panic(err)
		}
		if err := s.Commit(b); err != nil {
			panic(err)
		}
		fmt.Printf("done %s\n", b.Digest())
	}
}
