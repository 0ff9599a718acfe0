package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAuditAppendRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	l, err := OpenAudit(p)
	if err != nil {
		t.Fatal(err)
	}
	l.Append(Record{Who: "dev1", What: "install", Digest: "ab", Decision: DecisionAccept})
	l.Append(Record{Who: "dev1", What: "install", Digest: "cd", Decision: DecisionRefuse, Reason: "bundle refused (unsigned): x"})
	l.Close()
	if err := l.Append(Record{}); err == nil {
		t.Fatal("append after close")
	}
	recs, err := ReadAudit(p)
	if err != nil || len(recs) != 2 || recs[1].Reason == "" || recs[0].Time.IsZero() {
		t.Fatalf("%+v %v", recs, err)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
}

func TestAuditTornTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "audit.log")
	l, _ := OpenAudit(p)
	l.Append(Record{Who: "a", What: "verify", Decision: DecisionAccept})
	l.Close()
	f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2024-01-01T00:00:00Z","who":"b","wh`) // crash mid-write
	f.Close()
	recs, err := ReadAudit(p)
	if err != nil || len(recs) != 1 {
		t.Fatalf("torn tail not tolerated: %+v %v", recs, err)
	}
	l, err = OpenAudit(p)
	if err != nil {
		t.Fatal(err)
	}
	l.Append(Record{Who: "c", What: "verify", Decision: DecisionRefuse})
	l.Close()
	recs, err = ReadAudit(p)
	if err != nil || len(recs) != 2 || recs[1].Who != "c" {
		t.Fatalf("append after torn tail: %+v %v", recs, err)
	}
}

func TestAuditMalformedMiddleLine(t *testing.T) {
	_, err := ParseAudit(strings.NewReader("{\"who\":\"a\",\"what\":\"x\",\"decision\":\"accept\",\"time\":\"2024-01-01T00:00:00Z\"}\nnot json\n{}\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "2: malformed") {
		t.Fatalf("got %v", err)
	}
}

// TestAuditSurvivesKill appends from a child process that is killed with
// SIGKILL; every record the child reported as appended must be readable.
func TestAuditSurvivesKill(t *testing.T) {
	if os.Getenv("FENNEC_DEPLOY_HELPER") != "" {
		return
	}
	p := filepath.Join(t.TempDir(), "audit.log")
	for round := range 3 {
		out := runKilled(t, "audit", p, time.Duration(20+round*15)*time.Millisecond)
		acked := bytes.Count(out, []byte("appended\n"))
		recs, err := ReadAudit(p)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if len(recs) < acked {
			t.Fatalf("round %d: %d records acknowledged, %d readable", round, acked, len(recs))
		}
	}
}

func helperAudit(path string) {
	l, err := OpenAudit(path)
	if err != nil {
		panic(err)
	}
	for i := 0; ; i++ {
		if err := l.Append(Record{Who: "helper", What: "verify", Decision: DecisionAccept, Reason: strings.Repeat("x", i%300)}); err != nil {
			panic(err)
		}
		os.Stdout.WriteString("appended\n")
	}
}

func FuzzParseAudit(f *testing.F) {
	f.Add([]byte("{\"who\":\"a\",\"what\":\"x\",\"decision\":\"accept\",\"time\":\"2024-01-01T00:00:00Z\"}\n{\"who\""))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseAudit(bytes.NewReader(b))
	})
}
