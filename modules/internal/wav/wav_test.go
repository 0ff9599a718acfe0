package wav

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"testing"
)

// build writes a WAV file: a fmt chunk (format, channels, rate, bits),
// optional extra chunks before data, and the data bytes.
func build(format, channels, rate, bits int, extra [][2]string, data []byte) []byte {
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(0)) // patched below
	b.WriteString("WAVE")
	fmtSize := 16
	if format == formatExtensible {
		fmtSize = 40
	}
	b.WriteString("fmt ")
	le(uint32(fmtSize))
	le(uint16(format))
	le(uint16(channels))
	le(uint32(rate))
	le(uint32(rate * channels * bits / 8))
	le(uint16(channels * bits / 8))
	le(uint16(bits))
	if format == formatExtensible {
		le(uint16(22))
		le(uint16(bits))
		le(uint32(0))
		le(uint16(formatPCM))
		b.WriteString("\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71")
	}
	for _, c := range extra {
		b.WriteString(c[0])
		le(uint32(len(c[1])))
		b.WriteString(c[1])
		if len(c[1])%2 == 1 {
			b.WriteByte(0)
		}
	}
	b.WriteString("data")
	le(uint32(len(data)))
	b.Write(data)
	out := b.Bytes()
	binary.LittleEndian.PutUint32(out[4:], uint32(len(out)-8))
	return out
}

func pcm16(vs ...int16) []byte {
	b := make([]byte, 2*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return b
}

func TestDecodeFormats(t *testing.T) {
	f32 := make([]byte, 8)
	binary.LittleEndian.PutUint32(f32, math.Float32bits(0.5))
	binary.LittleEndian.PutUint32(f32[4:], math.Float32bits(-2)) // clipped
	cases := []struct {
		name string
		in   []byte
		rate int
		want []float32
	}{
		{"pcm16 mono", build(formatPCM, 1, 16000, 16, nil, pcm16(16384, -32768, 0)), 16000, []float32{0.5, -1, 0}},
		{"pcm16 stereo mixed down", build(formatPCM, 2, 8000, 16, nil, pcm16(16384, 0, -16384, -16384)), 8000, []float32{0.25, -0.5}},
		{"pcm8", build(formatPCM, 1, 16000, 8, nil, []byte{128, 192, 0}), 16000, []float32{0, 0.5, -1}},
		{"pcm24", build(formatPCM, 1, 16000, 24, nil, []byte{0, 0, 0x40, 0, 0, 0x80}), 16000, []float32{0.5, -1}},
		{"float32", build(formatFloat, 1, 16000, 32, nil, f32), 16000, []float32{0.5, -1}},
		{"extensible pcm16", build(formatExtensible, 1, 16000, 16, nil, pcm16(16384)), 16000, []float32{0.5}},
		{"odd LIST chunk before data", build(formatPCM, 1, 16000, 16, [][2]string{{"LIST", "abc"}}, pcm16(16384)), 16000, []float32{0.5}},
		{"raw pcm16", pcm16(-16384, 32767), 16000, []float32{-0.5, 32767.0 / 32768}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := Decode(c.in, 16000)
			if err != nil {
				t.Fatal(err)
			}
			if a.SampleRate != c.rate || len(a.Samples) != len(c.want) {
				t.Fatalf("rate %d, %d samples; want %d, %d", a.SampleRate, len(a.Samples), c.rate, len(c.want))
			}
			for i, w := range c.want {
				if math.Abs(float64(a.Samples[i]-w)) > 1e-6 {
					t.Fatalf("sample %d = %v, want %v", i, a.Samples[i], w)
				}
			}
		})
	}
}

// TestStreamingSizes: a data chunk whose size runs past the end (a
// streaming writer's 0xFFFFFFFF, or a truncated file) is read up to the
// end in whole frames.
func TestStreamingSizes(t *testing.T) {
	b := build(formatPCM, 2, 16000, 16, nil, pcm16(100, 100, 200, 200, 300))
	binary.LittleEndian.PutUint32(b[4:], 0xFFFFFFFF)
	binary.LittleEndian.PutUint32(b[40:], 0xFFFFFFFF)
	a, err := DecodeWAV(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Samples) != 2 {
		t.Fatalf("%d samples, want 2 whole frames", len(a.Samples))
	}
}

func TestDecodeErrors(t *testing.T) {
	ok := build(formatPCM, 1, 16000, 16, nil, pcm16(1, 2))
	mut := func(off int, v uint32, size int) []byte {
		b := bytes.Clone(ok)
		if size == 2 {
			binary.LittleEndian.PutUint16(b[off:], uint16(v))
		} else {
			binary.LittleEndian.PutUint32(b[off:], v)
		}
		return b
	}
	cases := []struct {
		name string
		in   []byte
		msg  string
	}{
		{"odd raw length", []byte{1, 2, 3}, "whole number of 16-bit samples"},
		{"RIFF not WAVE", append([]byte("RIFF\x04\x00\x00\x00AVI "), 0, 0), "not WAVE"},
		{"no chunks", []byte("RIFF\x04\x00\x00\x00WAVE"), "no fmt chunk"},
		{"fmt too long", mut(16, 1<<30, 4), "claims 1073741824 bytes"},
		{"fmt too short", mut(16, 8, 4), "want at least 16"},
		{"format code", mut(20, 85, 2), "format code 85"}, // MP3
		{"no channels", mut(22, 0, 2), "0 channels"},
		{"zero rate", mut(24, 0, 4), "sample rate 0"},
		{"bits", mut(34, 12, 2), "12 bits"},
		{"block align", mut(32, 7, 2), "block align 7"},
		{"data before fmt", append([]byte("RIFF\x00\x00\x00\x00WAVEdata\x02\x00\x00\x00"), 0, 0), "before the fmt chunk"},
		{"no data", ok[:36], "no data chunk"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.in, 16000)
			if err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want an error containing %q", err, c.msg)
			}
		})
	}
}

// FuzzDecode: any bytes decode or fail cleanly, and a decoded file never
// has more samples than its bytes could hold.
func FuzzDecode(f *testing.F) {
	f.Add(build(formatPCM, 1, 16000, 16, nil, pcm16(1, 2, 3)))
	f.Add(build(formatExtensible, 2, 44100, 16, [][2]string{{"LIST", "x"}}, pcm16(1, 2)))
	f.Add(build(formatFloat, 1, 16000, 32, nil, make([]byte, 8)))
	f.Add([]byte("RIFF\xff\xff\xff\xffWAVEfmt \xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Decode(b, 16000)
		if err != nil {
			return
		}
		if len(a.Samples) > len(b) {
			t.Fatalf("%d samples from %d bytes", len(a.Samples), len(b))
		}
		for i, s := range a.Samples {
			if !(s >= -1 && s <= 1) {
				t.Fatalf("sample %d = %v outside [-1, 1]", i, s)
			}
		}
	})
}

// TestMonoWindows: Mono over windows, past the end and before the start,
// gives the decoded samples and zeros, on the 16-bit fast path and the
// general one.
func TestMonoWindows(t *testing.T) {
	for _, f := range []Format{{SampleRate: 16000, Channels: 1, Bits: 16}, {SampleRate: 16000, Channels: 1, Bits: 24}} {
		w := f.Bits / 8
		data := make([]byte, 10*w)
		for i := range 10 {
			data[i*w+w-1] = byte(i) // sample i = i / 128
		}
		for _, from := range []int{-3, 0, 4, 8, 10, 50} {
			dst := make([]float32, 5)
			for i := range dst {
				dst[i] = 9
			}
			n := f.Mono(data, from, dst)
			want := 0
			for i, v := range dst {
				j := from + i
				exp := float32(0)
				if j >= 0 && j < 10 {
					exp = float32(j) / 128
					want++
				}
				if v != exp {
					t.Fatalf("%d bits, from %d: dst[%d] = %v, want %v", f.Bits, from, i, v, exp)
				}
			}
			if n != want {
				t.Fatalf("%d bits, from %d: n = %d, want %d", f.Bits, from, n, want)
			}
		}
	}
}
