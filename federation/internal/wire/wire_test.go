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
	dg := Digest(payload)
	parts := Split(payload, 1000)
	var a Assembler
	for i, p := range parts {
		c := Chunk{Device: "d1", Round: 7, Seq: uint64(i), Total: uint64(len(parts)), Size: uint64(len(payload)), Digest: dg, Data: p}
		if i == len(parts)-1 {
			c.MAC = UpdateMAC(key, "d1", 7, dg)
		}
		c2, err := DecodeChunk(Encode(c))
		if err != nil {
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
	got, mac := a.Payload()
	if !bytes.Equal(got, payload) || !bytes.Equal(mac, UpdateMAC(key, "d1", 7, dg)) {
		t.Fatal("payload or mac differs")
	}
	if bytes.Equal(UpdateMAC(key, "d1", 8, dg), mac) {
		t.Fatal("mac does not bind the round")
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
	f.Add(Encode(Chunk{Device: "d", Round: 1, Total: 1, Size: uint64(len(p)), Digest: Digest(p), MAC: make([]byte, 32), Data: p}))
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
