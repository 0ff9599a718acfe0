// Package wav decodes the audio a guest module is given: a RIFF/WAVE file
// (PCM 8, 16, 24 or 32 bits, IEEE float 32 or 64 bits, plain or
// WAVE_FORMAT_EXTENSIBLE) or raw 16-bit little-endian PCM, into mono
// float32 samples. The bytes come from whoever calls the module, so every
// size is checked against what is there, the chunk walk is bounded by the
// input's length, and the output is never larger than the input's sample
// count.
package wav

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"unsafe"
)

// littleEndian: int16 samples can be read in place.
var littleEndian = func() bool { x := uint16(1); return *(*byte)(unsafe.Pointer(&x)) == 1 }()

// Audio is decoded audio, mixed down to one channel.
type Audio struct {
	SampleRate int
	Channels   int // channels in the file (before the mix-down)
	Bits       int // bits per sample in the file
	Float      bool
	// Samples are in [-1, 1] for PCM (the integer value / 2^(bits-1)).
	Samples []float32
}

// Seconds is the audio's duration.
func (a *Audio) Seconds() float64 {
	if a.SampleRate <= 0 {
		return 0
	}
	return float64(len(a.Samples)) / float64(a.SampleRate)
}

// ErrNotWAV means the bytes do not start with a RIFF/WAVE header.
var ErrNotWAV = errors.New("not a RIFF/WAVE file")

// IsWAV reports whether b starts like a WAV file.
func IsWAV(b []byte) bool {
	return len(b) >= 12 && string(b[0:4]) == "RIFF" && string(b[8:12]) == "WAVE"
}

const (
	formatPCM        = 1
	formatFloat      = 3
	formatExtensible = 0xFFFE
	maxChannels      = 64
)

// Format is the sample layout of a WAV file's (or raw PCM's) data.
type Format struct {
	SampleRate int
	Channels   int
	Bits       int
	Float      bool
}

func (f Format) frameSize() int { return f.Channels * f.Bits / 8 }

// Frames is the number of whole frames (one sample per channel) in data.
func (f Format) Frames(data []byte) int { return len(data) / f.frameSize() }

// Mono converts frames [from, from+len(dst)) of data to mono samples in
// dst, mixing the channels down; frames past the end are zero. It returns
// how many frames were there.
func (f Format) Mono(data []byte, from int, dst []float32) int {
	width := f.Bits / 8
	frame := f.frameSize()
	format := formatPCM
	if f.Float {
		format = formatFloat
	}
	if f.Channels == 1 && f.Bits == 16 && !f.Float && from >= 0 {
		// The common case, without a call per sample (which costs
		// hundreds of ns in a wasm guest).
		n := max(0, min(len(dst), len(data)/2-from))
		if n > 0 {
			src := data[2*from : 2*(from+n)]
			if littleEndian {
				// One 16-bit load per sample (Wasm is little-endian and
				// allows unaligned loads): about 4x faster in the guest.
				s16 := unsafe.Slice((*int16)(unsafe.Pointer(unsafe.SliceData(src))), n)
				d := dst[:n]
				for i, v := range s16 {
					d[i] = float32(v) * (1.0 / 32768)
				}
			} else {
				for i := range n {
					dst[i] = float32(int16(uint16(src[2*i])|uint16(src[2*i+1])<<8)) * (1.0 / 32768)
				}
			}
		}
		clear(dst[n:])
		return n
	}
	n := 0
	inv := 1 / float32(f.Channels)
	for i := range dst {
		j := from + i
		if j < 0 || (j+1)*frame > len(data) {
			dst[i] = 0
			continue
		}
		fr := data[j*frame : (j+1)*frame]
		if f.Channels == 1 {
			dst[i] = sample(fr, format, f.Bits)
		} else {
			var sum float32
			for c := range f.Channels {
				sum += sample(fr[c*width:(c+1)*width], format, f.Bits)
			}
			dst[i] = sum * inv
		}
		n++
	}
	return n
}

// Parse finds the format and the sample data of b without converting it:
// a WAV file when b starts with a RIFF/WAVE header, raw 16-bit
// little-endian mono PCM at rawRate otherwise. The data is a sub-slice of b.
func Parse(b []byte, rawRate int) (Format, []byte, error) {
	if IsWAV(b) {
		return ParseWAV(b)
	}
	if len(b) >= 12 && string(b[0:4]) == "RIFF" {
		return Format{}, nil, fmt.Errorf("wav: RIFF file of form %q, not WAVE", safe(b[8:12]))
	}
	if rawRate <= 0 {
		return Format{}, nil, fmt.Errorf("pcm: sample rate %d", rawRate)
	}
	if len(b)%2 != 0 {
		return Format{}, nil, fmt.Errorf("pcm: %d bytes is not a whole number of 16-bit samples (raw input must be 16-bit little-endian mono PCM; or give a WAV file)", len(b))
	}
	return Format{SampleRate: rawRate, Channels: 1, Bits: 16}, b, nil
}

// Decode decodes b (see Parse) into mono samples.
func Decode(b []byte, rawRate int) (*Audio, error) {
	f, data, err := Parse(b, rawRate)
	if err != nil {
		return nil, err
	}
	out := make([]float32, f.Frames(data))
	f.Mono(data, 0, out)
	return &Audio{SampleRate: f.SampleRate, Channels: f.Channels, Bits: f.Bits, Float: f.Float, Samples: out}, nil
}

// DecodePCM16 decodes raw 16-bit little-endian mono PCM.
func DecodePCM16(b []byte, rate int) (*Audio, error) {
	if IsWAV(b) {
		return nil, errors.New("pcm: the bytes are a WAV file")
	}
	return Decode(b, rate)
}

// DecodeWAV decodes a RIFF/WAVE file into mono samples.
func DecodeWAV(b []byte) (*Audio, error) {
	if !IsWAV(b) {
		return nil, ErrNotWAV
	}
	return Decode(b, 0)
}

// ParseWAV finds the format and data of a RIFF/WAVE file. The RIFF size field may be wrong (as
// streaming writers leave it: 0 or 0xFFFFFFFF); the chunks are walked
// within the bytes there are. A data chunk whose size runs past the end
// (a truncated file, or a streaming writer's 0xFFFFFFFF) is read up to the
// end, in whole frames.
func ParseWAV(b []byte) (Format, []byte, error) {
	if !IsWAV(b) {
		return Format{}, nil, ErrNotWAV
	}
	var (
		haveFmt                bool
		format, channels, bits int
		rate, blockAlign       int
		data                   []byte
		haveData               bool
	)
	off := 12
	for off+8 <= len(b) { // each pass consumes >= 8 bytes: bounded by len(b)/8
		id := string(b[off : off+4])
		size := int64(binary.LittleEndian.Uint32(b[off+4:]))
		body := off + 8
		end := int64(body) + size
		if id == "data" {
			if !haveFmt {
				return Format{}, nil, fmt.Errorf("wav: data chunk at byte %d before the fmt chunk", off)
			}
			if end > int64(len(b)) {
				end = int64(len(b))
			}
			data, haveData = b[body:end], true
			break
		}
		if end > int64(len(b)) {
			return Format{}, nil, fmt.Errorf("wav: chunk %q at byte %d claims %d bytes, only %d remain", safe(b[off:off+4]), off, size, len(b)-body)
		}
		if id == "fmt " {
			if haveFmt {
				return Format{}, nil, fmt.Errorf("wav: second fmt chunk at byte %d", off)
			}
			if size < 16 {
				return Format{}, nil, fmt.Errorf("wav: fmt chunk of %d bytes, want at least 16", size)
			}
			f := b[body:end]
			format = int(binary.LittleEndian.Uint16(f[0:]))
			channels = int(binary.LittleEndian.Uint16(f[2:]))
			rate = int(binary.LittleEndian.Uint32(f[4:]))
			blockAlign = int(binary.LittleEndian.Uint16(f[12:]))
			bits = int(binary.LittleEndian.Uint16(f[14:]))
			if format == formatExtensible {
				if size < 40 {
					return Format{}, nil, fmt.Errorf("wav: WAVE_FORMAT_EXTENSIBLE fmt chunk of %d bytes, want 40", size)
				}
				// The sub-format GUID's first two bytes are the format code.
				format = int(binary.LittleEndian.Uint16(f[24:]))
			}
			haveFmt = true
		}
		off = int(end)
		if size%2 == 1 { // chunks are padded to an even size
			off++
		}
	}
	if !haveFmt {
		return Format{}, nil, errors.New("wav: no fmt chunk")
	}
	if !haveData {
		return Format{}, nil, errors.New("wav: no data chunk")
	}
	switch {
	case format != formatPCM && format != formatFloat:
		return Format{}, nil, fmt.Errorf("wav: format code %d is not PCM (1) or IEEE float (3)", format)
	case channels < 1 || channels > maxChannels:
		return Format{}, nil, fmt.Errorf("wav: %d channels (want 1..%d)", channels, maxChannels)
	case rate < 1 || rate > 1_000_000:
		return Format{}, nil, fmt.Errorf("wav: sample rate %d", rate)
	case format == formatPCM && bits != 8 && bits != 16 && bits != 24 && bits != 32:
		return Format{}, nil, fmt.Errorf("wav: PCM with %d bits per sample (want 8, 16, 24 or 32)", bits)
	case format == formatFloat && bits != 32 && bits != 64:
		return Format{}, nil, fmt.Errorf("wav: float with %d bits per sample (want 32 or 64)", bits)
	}
	if blockAlign != channels*bits/8 {
		return Format{}, nil, fmt.Errorf("wav: block align %d, want %d (%d channels of %d bits)", blockAlign, channels*bits/8, channels, bits)
	}
	return Format{SampleRate: rate, Channels: channels, Bits: bits, Float: format == formatFloat}, data, nil
}

func sample(p []byte, format, bits int) float32 {
	if format == formatFloat {
		var v float64
		if bits == 32 {
			v = float64(math.Float32frombits(binary.LittleEndian.Uint32(p)))
		} else {
			v = math.Float64frombits(binary.LittleEndian.Uint64(p))
		}
		if math.IsNaN(v) {
			return 0
		}
		return float32(max(-1, min(1, v)))
	}
	switch bits {
	case 8: // unsigned
		return (float32(p[0]) - 128) / 128
	case 16:
		return float32(int16(binary.LittleEndian.Uint16(p))) / 32768
	case 24:
		v := int32(uint32(p[0])|uint32(p[1])<<8|uint32(p[2])<<16) << 8 >> 8
		return float32(v) / (1 << 23)
	default:
		return float32(float64(int32(binary.LittleEndian.Uint32(p))) / (1 << 31))
	}
}

func safe(b []byte) string {
	r := []byte(nil)
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		r = append(r, c)
	}
	return string(r)
}
