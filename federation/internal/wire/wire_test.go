package wire

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/federation/internal/model"
)

func TestChunkRoundTrip(t *testing.T) {
	payload := bytes.Repeat([]byte("fennec"), 1000)
	key := DeviceKey([]byte("secret-secret-secret"), "d1")
	parts := Frame(key, "d1", 7, payload, 1000)
	var a Assembler
	for i, c := range parts {
		c2, err := DecodeChunk(Encode(c))
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyChunk(key, &c2); err != nil {
			t.Fatal(err)
		}
		done, err := a.Add(c2)
		if err != nil {
			t.Fatal(err)
		}
		if done != (i == len(parts)-1) {
			t.Fatalf("done=%v at %d", done, i)
		}
	}
	got, _ := a.Payload()
	if !bytes.Equal(got, payload) {
		t.Fatal("payload differs")
	}
}

// A chunk's MAC binds it to its device, round, upload, position and data:
// no field can be changed, and a chunk of another upload does not
// continue this one.
func TestChunkMACBindsEverything(t *testing.T) {
	key := DeviceKey([]byte("secret-secret-secret"), "d1")
	payload := bytes.Repeat([]byte("x"), 300)
	c := Frame(key, "d1", 7, payload, 100)
	for name, change := range map[string]func(*Chunk){
		"device": func(c *Chunk) { c.Device = "d2" },
		"round":  func(c *Chunk) { c.Round++ },
		"upload": func(c *Chunk) { c.Upload = bytes.Repeat([]byte{1}, UploadIDBytes) },
		"seq":    func(c *Chunk) { c.Seq++ },
		"total":  func(c *Chunk) { c.Total++ },
		"size":   func(c *Chunk) { c.Size++ },
		"digest": func(c *Chunk) { c.Digest = Digest(nil) },
		"data":   func(c *Chunk) { c.Data = []byte("y") },
	} {
		x := c[1]
		x.Upload = bytes.Clone(x.Upload)
		change(&x)
		if VerifyChunk(key, &x) == nil {
			t.Errorf("chunk with a changed %s verifies", name)
		}
	}
	if VerifyChunk(DeviceKey([]byte("secret-secret-secret"), "d2"), &c[0]) == nil {
		t.Error("chunk verifies under another device's key")
	}
	other := Frame(key, "d1", 7, payload, 100)
	var a Assembler
	if _, err := a.Add(c[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Add(other[1]); err == nil {
		t.Fatal("a chunk of another upload continued this one")
	}
	// Version 1 chunks (no version, no upload id) are refused by name.
	old := c[0]
	old.V = 0
	if _, err := DecodeChunk(Encode(old)); err == nil || !strings.Contains(err.Error(), "version") {
		t.Fatalf("version-0 chunk: %v", err)
	}
}

// Declaring a large payload reserves nothing: the buffer follows the bytes.
func TestAssemblerReservesNothing(t *testing.T) {
	key := DeviceKey([]byte("s"), "d")
	c := Frame(key, "d", 1, make([]byte, 10), 10)[0]
	c.Size, c.Total = MaxUpdateBytes, 1<<20
	var a Assembler
	if _, err := a.Add(c); err != nil {
		t.Fatal(err)
	}
	if cap(a.buf) > 1<<10 {
		t.Fatalf("assembler reserved %d bytes for 10 received", cap(a.buf))
	}
}

func TestJoinAndCreds(t *testing.T) {
	key := DeviceKey([]byte("s"), "dev")
	j := Join{Device: "dev", TimeMS: time.Now().UnixMilli(), Nonce: 1}
	SignJoin(key, &j)
	if err := VerifyJoin(key, &j, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := VerifyJoin(DeviceKey([]byte("s"), "other"), &j, time.Now()); err == nil {
		t.Fatal("join verified with another device's key")
	}
	if err := VerifyJoin(key, &j, time.Now().Add(time.Hour)); err == nil {
		t.Fatal("stale join accepted")
	}
	id, k, err := ParseCreds([]byte(FormatCreds("dev", key)))
	if err != nil || id != "dev" || !bytes.Equal(k, key) {
		t.Fatalf("creds round trip: %v %q", err, id)
	}
	for _, bad := range []string{"", "nocolon", "a b:00", "dev:zz", "dev:00"} {
		if _, _, err := ParseCreds([]byte(bad)); err == nil {
			t.Errorf("creds %q accepted", bad)
		}
	}
}

func seeds(f interface{ Add(...any) }) {
	m := model.Model{Name: "m", Tensors: []model.Tensor{model.F32Tensor("w", []uint64{2}, []float32{1, 2})}}
	p := Encode(Body{Model: m, NumExamples: 3, Metrics: map[string]float64{"loss": 1}})
	f.Add(p)
	f.Add(Encode(Frame([]byte("k"), "d", 1, p, 16)[0]))
	f.Add(Encode(Task{Round: 1, Size: 10, Chunks: 1, Digest: make([]byte, 32), Settings: Settings{Mode: "weights"}, MAC: make([]byte, 32)}))
	j := Join{Device: "d", TimeMS: 1}
	SignJoin([]byte("k"), &j)
	f.Add(Encode(j))
	f.Add(Encode(ModelReq{Version: 1}))
	f.Add(Encode(Ack{OK: true}))
}

// Every decoder of network bytes, fed the same corpus.
func FuzzDecoders(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := DecodeChunk(b); err == nil {
			var a Assembler
			_, _ = a.Add(c)
		}
		if body, err := DecodeBody(b); err == nil {
			_ = body.Model.Flatten()
		}
		_, _ = DecodeTask(b)
		_, _ = DecodeJoin(b)
		_, _ = DecodeModelReq(b)
		_, _ = DecodeAck(b)
	})
}

func FuzzCreds(f *testing.F) {
	f.Add([]byte(FormatCreds("dev", make([]byte, 32))))
	f.Fuzz(func(t *testing.T, b []byte) { _, _, _ = ParseCreds(b) })
}

func FuzzParseSecret(f *testing.F) {
	_, file, err := NewSecret()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(file)
	f.Add([]byte("00112233445566778899aabbccddeeff"))
	f.Add([]byte("zz\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSecret(b)
		if err == nil && len(s) < MinSecretBytes {
			t.Fatalf("accepted a %d-byte secret", len(s))
		}
	})
}

// Each MAC'd kind is its own domain: a join is not a leave; a task's MAC
// binds the device and every field but the inline model.
func TestMACDomains(t *testing.T) {
	key := DeviceKey([]byte("secret"), "d1")
	j := Join{Device: "d1", TimeMS: time.Now().UnixMilli(), Nonce: 7}
	SignJoin(key, &j)
	if err := VerifyLeave(key, &j, time.Now()); err == nil {
		t.Fatal("a join verifies as a leave")
	}
	SignLeave(key, &j)
	if err := VerifyLeave(key, &j, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := VerifyJoin(key, &j, time.Now()); err == nil {
		t.Fatal("a leave verifies as a join")
	}
	task := Task{Round: 3, Version: 2, Size: 4, Chunks: 1, Digest: Digest([]byte("mdl!")), Inline: []byte("mdl!"),
		Settings: Settings{LR: 0.05, Epochs: 1, BatchSize: 32, Mode: "weights"}, DeadlineMS: 1000}
	task.MAC = TaskMAC(key, "d1", TaskDigest(task))
	dec, err := DecodeTask(Encode(task))
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyTask(key, "d1", dec); err != nil {
		t.Fatal(err)
	}
	if VerifyTask(DeviceKey([]byte("secret"), "d2"), "d2", dec) == nil || VerifyTask(key, "d2", dec) == nil {
		t.Fatal("a task for d1 verifies for d2")
	}
	for name, f := range map[string]func(*Task){
		"round":    func(t *Task) { t.Round++ },
		"digest":   func(t *Task) { t.Digest = Digest([]byte("evil")) },
		"lr":       func(t *Task) { t.Settings.LR = 1e6 },
		"deadline": func(t *Task) { t.DeadlineMS++ },
		"extra":    func(t *Task) { t.Extra = map[string][]byte{"x": {1}} },
	} {
		c := dec
		f(&c)
		if VerifyTask(key, "d1", c) == nil {
			t.Errorf("a task with a changed %s verifies", name)
		}
	}
	if DevicePassword(key) == DevicePassword(DeviceKey([]byte("secret"), "d2")) || strings.Contains(DevicePassword(key), fmt.Sprintf("%x", key)) {
		t.Fatal("device passwords are not per device, or reveal the key")
	}
}
