package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fennec-edge/fennec/internal/atomicfile"
)

// Record is one line of the audit log.
type Record struct {
	Time    time.Time `json:"time"`
	Who     string    `json:"who"`  // the actor: a device ID, an operator, "cli"
	What    string    `json:"what"` // the action: verify, install, swap, rollback, deploy, start
	Module  string    `json:"module,omitempty"`
	Version string    `json:"version,omitempty"`
	Digest  string    `json:"digest,omitempty"`
	Signers string    `json:"signers,omitempty"` // the keys that vouched, e.g. "publisher:acme"
	// Models are the models the bundle carries, NAME@SHA256 (pinned by
	// its manifest), comma-separated.
	Models   string `json:"models,omitempty"`
	Decision string `json:"decision"` // accept, refuse, rollback, fail
	Reason   string `json:"reason,omitempty"`
}

// Decisions written to the audit log.
const (
	DecisionAccept   = "accept"
	DecisionRefuse   = "refuse"
	DecisionRollback = "rollback"
	DecisionFail     = "fail"
)

// maxAuditLine bounds one record; longer lines are refused on write and
// reported on read.
const maxAuditLine = 64 << 10

// AuditLog is an append-only file of JSON lines. Each Append writes one
// whole line with a single write and fsyncs it before returning, so a
// record that Append reported is durable, and a crash mid-write leaves at
// most a torn last line, which ReadAudit skips and OpenAudit trims.
type AuditLog struct {
	mu   sync.Mutex
	f    *os.File
	path string
	now  func() time.Time
}

// OpenAudit opens (creating, mode 0600) the audit log at path for appending.
func OpenAudit(path string) (*AuditLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	if err := trimTornTail(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit log %s: %w", path, err)
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, err
	}
	if err := atomicfile.SyncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, err
	}
	return &AuditLog{f: f, path: path, now: time.Now}, nil
}

// trimTornTail cuts a last line that has no newline: it was being written
// when the process died, and its Append never returned.
func trimTornTail(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], size-1); err != nil {
		return err
	}
	if last[0] == '\n' {
		return nil
	}
	// Find the last newline, scanning back in chunks.
	end := size
	buf := make([]byte, 4096)
	for end > 0 {
		n := int64(len(buf))
		if n > end {
			n = end
		}
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	if err := f.Truncate(end); err != nil {
		return err
	}
	return f.Sync()
}

// Append writes r (stamping the time if it is zero) and fsyncs it.
func (l *AuditLog) Append(r Record) error {
	if r.Time.IsZero() {
		r.Time = l.now().UTC()
	}
	line, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if len(line) >= maxAuditLine {
		return fmt.Errorf("audit record of %d bytes exceeds %d", len(line), maxAuditLine)
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return fmt.Errorf("audit log %s: %w", l.path, ErrClosed)
	}
	if _, err := l.f.Write(line); err != nil {
		return fmt.Errorf("audit log %s: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit log %s: fsync: %w", l.path, err)
	}
	return nil
}

// Close closes the log.
func (l *AuditLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// ReadAudit reads every complete record of the log at path. A torn last
// line (no trailing newline: a crash during a write) is ignored; a
// malformed complete line is an error naming its line number.
func ReadAudit(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	recs, err := ParseAudit(f)
	if err != nil {
		return recs, fmt.Errorf("%s:%w", path, err)
	}
	return recs, nil
}

// ParseAudit reads audit records from r; see ReadAudit.
func ParseAudit(r io.Reader) ([]Record, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var out []Record
	for n := 1; ; n++ {
		line, err := readLine(br)
		if err == io.EOF {
			return out, nil // a torn last line (no newline) ends here too
		}
		if err != nil {
			return out, fmt.Errorf("%d: %w", n, err)
		}
		var rec Record
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			return out, fmt.Errorf("%d: malformed audit record: %v", n, err)
		}
		if dec.More() {
			return out, fmt.Errorf("%d: malformed audit record: trailing data", n)
		}
		out = append(out, rec)
	}
}

// readLine returns the next newline-terminated line without its newline;
// io.EOF if none is complete.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxAuditLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxAuditLine)
		}
		switch err {
		case nil:
			return line[:len(line)-1], nil
		case bufio.ErrBufferFull:
			continue
		default:
			return nil, io.EOF
		}
	}
}

// DecisionRecord builds the audit record of a verification outcome: who
// did what to the bundle raw, with the verdict v or the refusal err.
func DecisionRecord(who, what string, raw []byte, v *Verified, err error) Record {
	r := Record{Who: who, What: what}
	var b *Bundle
	if v != nil {
		b = v.Bundle
	} else if d, derr := DecodeBundle(raw, Limits{}); derr == nil {
		b = d
	}
	if b != nil {
		r.Module, r.Version, r.Digest, r.Models = b.Name(), b.Version(), b.Digest(), b.modelsDesc()
	} else if len(raw) > 0 {
		r.Digest = "raw:" + sha256Hex(raw)
	}
	if err != nil {
		r.Decision, r.Reason = DecisionRefuse, err.Error()
		return r
	}
	r.Decision, r.Signers = DecisionAccept, v.Signers()
	if v.Rollback {
		r.Reason = "rollback authorised by operator " + v.Operator
	}
	return r
}
