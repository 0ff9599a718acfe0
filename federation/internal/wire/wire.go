// Package wire defines the federation protocol's messages on NATS, their
// CBOR encoding, device credentials (HMAC-SHA256 keys) and the chunking of
// large updates. Every decoder here takes untrusted network bytes: it bounds
// sizes, checks every field, and returns errors, never panics.
//
// Subjects, for a federation named N (prefix "fennec.N"):
//
//	fennec.N.join.<id>     device -> hub request: Join, reply Ack (also the heartbeat)
//	fennec.N.leave.<id>    device -> hub publish: Join (graceful leave)
//	fennec.N.task.<id>     hub -> device publish: Task
//	fennec.N.model         device -> hub request: ModelReq, reply raw chunk bytes
//	fennec.N.update.<id>   device -> hub request: Chunk, reply Ack
//
// Update chunks are versioned (Chunk.V, ChunkVersion): every chunk of
// version 2 names the upload it belongs to (an id the device draws at
// random per upload) and carries its own MAC under the device's key over
// the round, the upload id, its position and its data (ChunkMAC), so that
// no one but the device can start, continue or cancel its upload.
//
// A device's messages travel on subjects that end with its id, and the hub
// refuses a message whose device differs from its subject's, so that NATS
// permissions can bind a device's credential to its id (a device allowed to
// publish only fennec.N.*.<id> cannot speak for another).
package wire

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fennec-edge/fennec/federation/internal/model"
)

// Limits on what the hub and devices accept.
const (
	MaxIDBytes     = 128
	MaxChunkBytes  = 4 << 20
	MaxUpdateBytes = 1 << 30
	MaxMetrics     = 64
	MaxExtra       = 16
	MaxExtraBytes  = 16 << 20
	ClockSkew      = 5 * time.Minute
	DefaultChunk   = 256 << 10
	// UploadIDBytes is the length of Chunk.Upload.
	UploadIDBytes = 16
	// UpdateOverhead is what an update may add to the global model's
	// encoding: the Body framing, num_examples, up to MaxMetrics metrics and
	// a model name (MaxUpdateSize).
	UpdateOverhead = 64 << 10
)

// ChunkVersion is the update chunk format this package writes and the hub
// accepts. Version 1 (no V field, one MAC on the last chunk) let anyone
// who could publish on a device's update subject restart its upload.
const ChunkVersion = 2

// MaxUpdateSize is the largest update payload the hub accepts for a global
// model whose encoding is modelBytes long: the model plus UpdateOverhead,
// plus MaxExtraBytes when the round mode carries extras (withExtras), and
// never more than MaxUpdateBytes.
func MaxUpdateSize(modelBytes int, withExtras bool) uint64 {
	n := uint64(modelBytes) + UpdateOverhead
	if withExtras {
		n += MaxExtraBytes
	}
	return min(n, MaxUpdateBytes)
}

// Settings is the ABI's training Settings.
type Settings struct {
	LR        float64 `cbor:"lr"`
	Epochs    uint64  `cbor:"epochs"`
	BatchSize uint64  `cbor:"batch_size"`
	Mu        float64 `cbor:"mu"`
	Seed      uint64  `cbor:"seed"`
	Mode      string  `cbor:"mode"` // "weights" | "gradient"
	// DP asks the training module for patient-level DP-SGD (set by the
	// device's dpsgd mode client, never taken from the hub as is).
	DP *DPSettings `cbor:"dp,omitempty"`
}

// DPSettings is the ABI's Settings.dp: Steps DP-SGD steps, each on a
// Poisson sample of the units at SamplingRate, every unit's gradient
// clipped to Clip, Gaussian noise of std NoiseMultiplier*Clip on the sum.
type DPSettings struct {
	Clip            float64 `cbor:"clip"`
	NoiseMultiplier float64 `cbor:"noise_multiplier"`
	SamplingRate    float64 `cbor:"sampling_rate"`
	Steps           uint64  `cbor:"steps"`
}

// Join announces (and re-announces, as a heartbeat) a device.
type Join struct {
	Device string `cbor:"device"`
	TimeMS int64  `cbor:"ts"`
	Nonce  uint64 `cbor:"nonce"`
	MAC    []byte `cbor:"mac"`
}

// Task asks a device to train in a round.
type Task struct {
	Round      uint64            `cbor:"round"`
	Version    uint64            `cbor:"version"` // global model version (completed rounds)
	Size       uint64            `cbor:"size"`    // encoded model bytes
	Chunks     uint64            `cbor:"chunks"`
	Digest     []byte            `cbor:"digest"` // sha256 of the encoded model
	Inline     []byte            `cbor:"inline,omitempty"`
	Settings   Settings          `cbor:"settings"`
	DeadlineMS int64             `cbor:"deadline"`
	Mode       string            `cbor:"mode"` // privacy round mode; "" = plain
	Extra      map[string][]byte `cbor:"extra,omitempty"`
	// MAC is TaskMAC: the hub's proof, under the device's key, that it
	// sent this task to this device.
	MAC []byte `cbor:"mac"`
}

// ModelReq asks the hub for one chunk of a global model.
type ModelReq struct {
	Version uint64 `cbor:"version"`
	Seq     uint64 `cbor:"seq"`
}

// Chunk is one piece of a device's update payload (an encoded Body).
type Chunk struct {
	V      uint64 `cbor:"v"` // ChunkVersion
	Device string `cbor:"device"`
	Round  uint64 `cbor:"round"`
	Upload []byte `cbor:"upload"` // UploadIDBytes, drawn by the device per upload
	Seq    uint64 `cbor:"seq"`
	Total  uint64 `cbor:"total"`
	Size   uint64 `cbor:"size"`
	Digest []byte `cbor:"digest"` // sha256 of the whole payload
	MAC    []byte `cbor:"mac"`    // ChunkMAC, on every chunk
	Data   []byte `cbor:"data"`
}

// Body is a device's update: the ABI train output plus the protocol extras.
type Body struct {
	Model       model.Model        `cbor:"model"`
	NumExamples uint64             `cbor:"num_examples"`
	Metrics     map[string]float64 `cbor:"metrics"`
	Extra       map[string][]byte  `cbor:"extra,omitempty"`
}

// Ack answers a request.
type Ack struct {
	OK    bool   `cbor:"ok"`
	Code  string `cbor:"code,omitempty"` // "late", "auth", "bad", "dup", "busy"
	Error string `cbor:"error,omitempty"`
}

// Subjects for federation name. JoinPrefix, LeavePrefix, UpdatePrefix and
// TaskPrefix are followed by the device id.
type Subjects struct{ JoinPrefix, LeavePrefix, TaskPrefix, Model, UpdatePrefix string }

// ValidName reports whether s is usable as a federation name or device id
// in a subject token.
func ValidName(s string) error {
	if s == "" || len(s) > MaxIDBytes {
		return fmt.Errorf("name %q: must be 1..%d bytes", s, MaxIDBytes)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("name %q: only letters, digits, '-' and '_' allowed", s)
		}
	}
	return nil
}

// For returns the subjects of federation name.
func For(name string) Subjects {
	p := "fennec." + name
	return Subjects{p + ".join.", p + ".leave.", p + ".task.", p + ".model", p + ".update."}
}

// DeviceKey derives a device's credential from the fleet secret:
// HMAC-SHA256(secret, "fennec-device-v1|" + id).
func DeviceKey(secret []byte, id string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("fennec-device-v1|" + id))
	return m.Sum(nil)
}

func mac(key []byte, parts ...[]byte) []byte {
	m := hmac.New(sha256.New, key)
	var l [8]byte
	for _, p := range parts {
		binary.LittleEndian.PutUint64(l[:], uint64(len(p)))
		m.Write(l[:])
		m.Write(p)
	}
	return m.Sum(nil)
}

func u64(x uint64) []byte { return binary.LittleEndian.AppendUint64(nil, x) }

// Domain labels of the MAC'd message kinds. Every MAC in the protocol
// starts with its kind's label, so a MAC made for one kind never verifies
// as another (a captured join is not a valid leave). The privacy modes'
// step messages use "mode-step" and "mode-reply" (package hook).
const (
	KindJoin   = "join"   // join and heartbeat (a re-join): the device is available
	KindLeave  = "leave"  // graceful leave: the device is not
	KindTask   = "task"   // hub -> device: train in this round
	KindUpdate = "update" // device -> hub: the update of a round
)

func presenceMAC(key []byte, kind string, j *Join) []byte {
	return mac(key, []byte(kind), []byte(j.Device), u64(uint64(j.TimeMS)), u64(j.Nonce))
}

// SignJoin fills j.MAC for a join or heartbeat.
func SignJoin(key []byte, j *Join) { j.MAC = presenceMAC(key, KindJoin, j) }

// SignLeave fills j.MAC for a leave.
func SignLeave(key []byte, j *Join) { j.MAC = presenceMAC(key, KindLeave, j) }

// VerifyJoin checks a join's (or heartbeat's) MAC and timestamp window.
func VerifyJoin(key []byte, j *Join, now time.Time) error {
	return verifyPresence(key, KindJoin, j, now)
}

// VerifyLeave checks a leave's MAC and timestamp window.
func VerifyLeave(key []byte, j *Join, now time.Time) error {
	return verifyPresence(key, KindLeave, j, now)
}

func verifyPresence(key []byte, kind string, j *Join, now time.Time) error {
	if !hmac.Equal(presenceMAC(key, kind, j), j.MAC) {
		return fmt.Errorf("%s: bad credentials", kind)
	}
	d := now.Sub(time.UnixMilli(j.TimeMS))
	if d > ClockSkew || d < -ClockSkew {
		return fmt.Errorf("%s: timestamp off by %v", kind, d.Round(time.Second))
	}
	return nil
}

// DevicePassword is the NATS password of a device on a hub without an
// access file: derived from its key (so the hub, which derives the same
// key from the fleet secret, checks it without a device list), and not
// the key itself, so that a captured password forges no MAC.
func DevicePassword(key []byte) string {
	return hex.EncodeToString(mac(key, []byte("nats-password")))
}

// TaskDigest is what a task's MAC covers besides the device: the SHA-256
// of its encoding without MAC and Inline (the inline model is bound by
// Digest, which the device checks), so every other field (round, version,
// model digest, settings, deadline, mode, extras) is authenticated.
func TaskDigest(t Task) []byte {
	t.MAC, t.Inline = nil, nil
	return Digest(Encode(t))
}

// TaskMAC is the MAC the hub puts on the task (of TaskDigest digest) it
// sends device, under that device's key: a task cannot be forged, altered
// or replayed to another device.
func TaskMAC(key []byte, device string, digest []byte) []byte {
	return mac(key, []byte(KindTask), []byte(device), digest)
}

// VerifyTask checks t's MAC for device.
func VerifyTask(key []byte, device string, t Task) error {
	if !hmac.Equal(TaskMAC(key, device, TaskDigest(t)), t.MAC) {
		return fmt.Errorf("task for round %d: mac does not verify (not sent by the hub)", t.Round)
	}
	return nil
}

// UpdateMAC is the MAC a version-1 device put on its update's last chunk.
// The hub no longer accepts version-1 chunks; ChunkMAC replaces it.
func UpdateMAC(key []byte, device string, round uint64, digest []byte) []byte {
	return mac(key, []byte(KindUpdate), []byte(device), u64(round), digest)
}

// ChunkMAC is the MAC of a version-2 chunk: HMAC-SHA256 under the device's
// key over the domain "chunk-v2", the device, round, upload id, sequence
// number, chunk count, payload size and digest, and the chunk's data. A
// chunk of one upload therefore cannot be moved to another round, upload
// or position, and its data cannot be changed.
func ChunkMAC(key []byte, c *Chunk) []byte {
	return mac(key, []byte("chunk-v2"), []byte(c.Device), u64(c.Round), c.Upload,
		u64(c.Seq), u64(c.Total), u64(c.Size), c.Digest, c.Data)
}

// VerifyChunk checks c's MAC under key.
func VerifyChunk(key []byte, c *Chunk) error {
	if !hmac.Equal(ChunkMAC(key, c), c.MAC) {
		return fmt.Errorf("chunk %d of device %q: mac does not verify", c.Seq, c.Device)
	}
	return nil
}

// Frame cuts payload into the signed chunks of one upload by device in
// round, each at most size data bytes, under a fresh random upload id.
func Frame(key []byte, device string, round uint64, payload []byte, size int) []Chunk {
	id := make([]byte, UploadIDBytes)
	if _, err := rand.Read(id); err != nil {
		panic(fmt.Sprintf("wire: upload id: %v", err)) // crypto/rand does not fail on supported systems
	}
	parts := Split(payload, size)
	dg := Digest(payload)
	out := make([]Chunk, len(parts))
	for i, p := range parts {
		out[i] = Chunk{V: ChunkVersion, Device: device, Round: round, Upload: id, Seq: uint64(i),
			Total: uint64(len(parts)), Size: uint64(len(payload)), Digest: dg, Data: p}
		out[i].MAC = ChunkMAC(key, &out[i])
	}
	return out
}

// ParseCreds reads a credentials file: "id:hexkey" on one line (whitespace
// and '#' comment lines ignored).
func ParseCreds(b []byte) (id string, key []byte, err error) {
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.IndexByte(line, ':')
		if i < 0 {
			return "", nil, errors.New("creds: expected id:hexkey")
		}
		id = line[:i]
		if err := ValidName(id); err != nil {
			return "", nil, fmt.Errorf("creds: device id: %w", err)
		}
		key, err = hex.DecodeString(line[i+1:])
		if err != nil || len(key) < 16 {
			return "", nil, errors.New("creds: key must be at least 16 bytes of hex")
		}
		return id, key, nil
	}
	return "", nil, errors.New("creds: empty file")
}

// MinSecretBytes is the shortest fleet secret accepted.
const MinSecretBytes = 16

// ParseSecret reads a fleet secret file: the secret in hex on one line
// (surrounding whitespace ignored), at least MinSecretBytes bytes.
func ParseSecret(b []byte) ([]byte, error) {
	s, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(s) < MinSecretBytes {
		return nil, fmt.Errorf("the fleet secret must be at least %d bytes of hex", MinSecretBytes)
	}
	return s, nil
}

// NewSecret returns a random 32-byte fleet secret and its file contents
// (ParseSecret's format).
func NewSecret() ([]byte, []byte, error) {
	s := make([]byte, 32)
	if _, err := rand.Read(s); err != nil {
		return nil, nil, err
	}
	return s, []byte(hex.EncodeToString(s) + "\n"), nil
}

// FormatCreds is ParseCreds' inverse.
func FormatCreds(id string, key []byte) string {
	return "# fennec device credentials\n" + id + ":" + hex.EncodeToString(key) + "\n"
}

// Encode marshals a message.
func Encode(v any) []byte {
	b, err := model.Marshal(v)
	if err != nil {
		// Only unsupported Go types fail to encode; the messages here have none.
		panic(fmt.Sprintf("wire: encode %T: %v", v, err))
	}
	return b
}

// DecodeJoin decodes and checks a Join.
func DecodeJoin(b []byte) (Join, error) {
	var j Join
	if err := model.Unmarshal(b, &j); err != nil {
		return j, fmt.Errorf("join: %w", err)
	}
	if err := ValidName(j.Device); err != nil {
		return j, fmt.Errorf("join: device: %w", err)
	}
	if len(j.MAC) != sha256.Size {
		return j, errors.New("join: mac must be 32 bytes")
	}
	return j, nil
}

// DecodeChunk decodes and checks a Chunk's framing.
func DecodeChunk(b []byte) (Chunk, error) {
	var c Chunk
	if err := model.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("chunk: %w", err)
	}
	if c.V != ChunkVersion {
		return c, fmt.Errorf("chunk: wire version %d, the hub accepts version %d (upgrade the device's agent)", c.V, ChunkVersion)
	}
	if err := ValidName(c.Device); err != nil {
		return c, fmt.Errorf("chunk: device: %w", err)
	}
	switch {
	case len(c.Upload) != UploadIDBytes:
		return c, fmt.Errorf("chunk: upload id must be %d bytes", UploadIDBytes)
	case c.Size == 0 || c.Size > MaxUpdateBytes:
		return c, fmt.Errorf("chunk: size %d outside 1..%d", c.Size, MaxUpdateBytes)
	case c.Total == 0 || c.Total > c.Size || c.Seq >= c.Total:
		return c, fmt.Errorf("chunk: seq %d of %d invalid for size %d", c.Seq, c.Total, c.Size)
	case len(c.Data) == 0 || len(c.Data) > MaxChunkBytes || uint64(len(c.Data)) > c.Size:
		return c, fmt.Errorf("chunk: %d data bytes", len(c.Data))
	case len(c.Digest) != sha256.Size:
		return c, errors.New("chunk: digest must be 32 bytes")
	case len(c.MAC) != sha256.Size:
		return c, errors.New("chunk: mac must be 32 bytes")
	}
	return c, nil
}

// DecodeBody decodes an update payload and checks its model and metrics.
func DecodeBody(b []byte) (Body, error) {
	var body Body
	if err := model.Unmarshal(b, &body); err != nil {
		return body, fmt.Errorf("update: %w", err)
	}
	if err := body.Model.Validate(); err != nil {
		return body, fmt.Errorf("update: %w", err)
	}
	if len(body.Metrics) > MaxMetrics || len(body.Extra) > MaxExtra {
		return body, errors.New("update: too many metrics or extras")
	}
	n := 0
	for k, v := range body.Extra {
		n += len(k) + len(v)
	}
	if n > MaxExtraBytes {
		return body, errors.New("update: extras too large")
	}
	return body, nil
}

// DecodeTask decodes and checks a Task.
func DecodeTask(b []byte) (Task, error) {
	var t Task
	if err := model.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("task: %w", err)
	}
	switch {
	case len(t.Digest) != sha256.Size:
		return t, errors.New("task: digest must be 32 bytes")
	case t.Size == 0 || t.Size > MaxUpdateBytes || t.Chunks == 0 || t.Chunks > t.Size:
		return t, fmt.Errorf("task: size %d / %d chunks invalid", t.Size, t.Chunks)
	case t.Inline != nil && uint64(len(t.Inline)) != t.Size:
		return t, errors.New("task: inline model size mismatch")
	case t.Settings.Mode != "weights" && t.Settings.Mode != "gradient":
		return t, fmt.Errorf("task: mode %q", t.Settings.Mode)
	case len(t.Extra) > MaxExtra:
		return t, errors.New("task: too many extras")
	case len(t.MAC) != sha256.Size:
		return t, errors.New("task: mac must be 32 bytes")
	}
	return t, nil
}

// DecodeModelReq decodes a ModelReq.
func DecodeModelReq(b []byte) (ModelReq, error) {
	var r ModelReq
	err := model.Unmarshal(b, &r)
	return r, err
}

// DecodeAck decodes an Ack.
func DecodeAck(b []byte) (Ack, error) {
	var a Ack
	err := model.Unmarshal(b, &a)
	return a, err
}

// Split cuts payload into chunks of at most size bytes.
func Split(payload []byte, size int) [][]byte {
	if size <= 0 {
		size = DefaultChunk
	}
	var out [][]byte
	for len(payload) > size {
		out = append(out, payload[:size])
		payload = payload[size:]
	}
	return append(out, payload)
}

// Digest is sha256.
func Digest(b []byte) []byte { d := sha256.Sum256(b); return d[:] }

// Assembler reassembles one upload's chunks, in order. It reserves no
// memory for a declared size: its buffer grows with the bytes received.
type Assembler struct {
	c    Chunk
	buf  []byte
	next uint64
}

// Upload is the id of the upload being assembled (nil before its first
// chunk).
func (a *Assembler) Upload() []byte { return a.c.Upload }

// Next is the sequence number the assembler expects next.
func (a *Assembler) Next() uint64 { return a.next }

// Len is the number of payload bytes received so far.
func (a *Assembler) Len() int { return len(a.buf) }

// Add appends c (which must continue the same upload) and reports whether
// the payload is complete. Authenticating c (VerifyChunk) is the caller's.
func (a *Assembler) Add(c Chunk) (done bool, err error) {
	if a.next == 0 {
		if c.Seq != 0 {
			return false, fmt.Errorf("chunk: seq %d, expected 0", c.Seq)
		}
		a.c = c
		a.c.Data = nil
	} else if c.Seq != a.next || c.Total != a.c.Total || c.Size != a.c.Size || c.Round != a.c.Round ||
		string(c.Digest) != string(a.c.Digest) || string(c.Upload) != string(a.c.Upload) {
		return false, fmt.Errorf("chunk: seq %d/%d does not continue seq %d/%d of this upload", c.Seq, c.Total, a.next, a.c.Total)
	}
	if uint64(len(a.buf))+uint64(len(c.Data)) > c.Size {
		return false, errors.New("chunk: payload exceeds its declared size")
	}
	a.buf = append(a.buf, c.Data...)
	a.next++
	if a.next < c.Total {
		return false, nil
	}
	if uint64(len(a.buf)) != c.Size {
		return false, fmt.Errorf("chunk: payload is %d bytes, declared %d", len(a.buf), c.Size)
	}
	if !hmacEqual(Digest(a.buf), c.Digest) {
		return false, errors.New("chunk: digest mismatch")
	}
	a.c.MAC = c.MAC
	return true, nil
}

// Payload returns the assembled bytes and the last chunk's MAC.
func (a *Assembler) Payload() ([]byte, []byte) { return a.buf, a.c.MAC }

func hmacEqual(a, b []byte) bool { return hmac.Equal(a, b) }
