// Command vad is a fennec guest module: voice activity detection with
// Silero VAD v5 (the operator's model "vad": --nn-preload
// vad:onnx:cpu:silero_vad_v5.onnx). Its manifest says input = "bytes":
// the input is a WAV file (PCM or float, any channel count, mixed down) or
// raw 16-bit little-endian mono PCM at 16 kHz, as `fennec run vad.wasm
// --input speech.wav` passes it.
//
// The audio is cut into 512-sample windows (256 at 8 kHz; the last one
// zero-padded), each given to the model with the 64 samples before it
// (32 at 8 kHz) as Silero's own wrapper does, and the model's recurrent
// state carried from window to window on the host.
//
// Entrypoints:
//
//	segments -> {"sample_rate", "duration" (s), "windows", "segments":
//	             [{"start", "end" (s), "prob" (mean speech probability)}]}
//	frames   -> {"sample_rate", "window" (samples), "probs": [...]}
//
// segments applies Silero's get_speech_timestamps hysteresis with its
// defaults (modules/internal/vadseg: onset 0.5, offset 0.35, min speech
// 250 ms, min silence 100 ms, 30 ms padding).
package main

import (
	"fmt"

	"github.com/fennec-edge/fennec/modules/internal/vadseg"
	"github.com/fennec-edge/fennec/modules/internal/wav"
	"github.com/fennec-edge/fennec/sdk"
	"github.com/fennec-edge/fennec/sdk/graph"
)

type segment struct {
	Start float64 `cbor:"start"`
	End   float64 `cbor:"end"`
	Prob  float32 `cbor:"prob"`
}

type segmentsOut struct {
	SampleRate int       `cbor:"sample_rate"`
	Duration   float64   `cbor:"duration"`
	Windows    int       `cbor:"windows"`
	Segments   []segment `cbor:"segments"`
}

type framesOut struct {
	SampleRate int       `cbor:"sample_rate"`
	Window     int       `cbor:"window"`
	Probs      []float32 `cbor:"probs"`
}

//go:wasmexport segments
func segments(n int32) int32 {
	return sdk.Serve(n, func(in []byte) ([]byte, error) {
		f, data, probs, err := detect(in)
		if err != nil {
			return nil, err
		}
		nSamples := f.Frames(data)
		window := windowOf(f.SampleRate)
		segs, err := vadseg.Segments(probs, window, f.SampleRate, nSamples, vadseg.Params{})
		if err != nil {
			return nil, err
		}
		out := segmentsOut{SampleRate: f.SampleRate, Duration: float64(nSamples) / float64(f.SampleRate), Windows: len(probs), Segments: []segment{}}
		for _, s := range segs {
			out.Segments = append(out.Segments, segment{
				Start: float64(s.Start) / float64(f.SampleRate),
				End:   float64(s.End) / float64(f.SampleRate),
				Prob:  s.Prob,
			})
		}
		return sdk.Marshal(&out)
	})
}

//go:wasmexport frames
func frames(n int32) int32 {
	return sdk.Serve(n, func(in []byte) ([]byte, error) {
		f, _, probs, err := detect(in)
		if err != nil {
			return nil, err
		}
		return sdk.Marshal(&framesOut{SampleRate: f.SampleRate, Window: windowOf(f.SampleRate), Probs: probs})
	})
}

func windowOf(rate int) int {
	if rate == 8000 {
		return 256
	}
	return 512
}

var model *graph.Graph // loaded once per instance; the weights are shared on the host

// detect parses the audio and runs the model on each window.
func detect(in []byte) (wav.Format, []byte, []float32, error) {
	f, data, err := wav.Parse(in, 16000)
	if err != nil {
		return f, nil, nil, err
	}
	if f.SampleRate != 16000 && f.SampleRate != 8000 {
		return f, nil, nil, fmt.Errorf("vad: sample rate %d Hz; Silero VAD takes 16000 or 8000 (resample first, e.g. sox in.wav -r 16000 out.wav)", f.SampleRate)
	}
	if model == nil {
		g, err := graph.Load("vad")
		if err != nil {
			return f, nil, nil, fmt.Errorf("vad: loading the operator's model \"vad\" (fennec run --nn-preload vad:onnx:cpu:silero_vad_v5.onnx): %w", err)
		}
		if len(g.Inputs) != 3 || len(g.Outputs) != 2 {
			g.Free()
			return f, nil, nil, fmt.Errorf("vad: model \"vad\" has %d inputs and %d outputs; want Silero VAD v5's input, state, sr -> output, stateN", len(g.Inputs), len(g.Outputs))
		}
		model = g
	}
	probs, err := run(f, data)
	return f, data, probs, err
}

func run(f wav.Format, data []byte) ([]float32, error) {
	window, context := 512, 64
	if f.SampleRate == 8000 {
		window, context = 256, 32
	}
	n := f.Frames(data)
	nWin := (n + window - 1) / window
	buf := make([]float32, context+window)
	x, err := sdk.FromF32([]int{1, context + window}, buf)
	if err != nil {
		return nil, err
	}
	defer x.Free()
	sr, err := sdk.FromI32(nil, []int32{int32(f.SampleRate)}) // int64 in the model
	if err != nil {
		return nil, err
	}
	defer sr.Free()
	state, err := sdk.Zeros(2, 1, 128)
	if err != nil {
		return nil, err
	}
	defer func() { state.Free() }()
	probs := make([]float32, nWin)
	var p [1]float32
	for i := range nWin {
		// The window's samples after the previous window's last context
		// samples (zeros before the first).
		copy(buf[:context], buf[window:])
		f.Mono(data, i*window, buf[context:])
		if err := x.Write(buf); err != nil {
			return nil, err
		}
		outs, err := model.Run(x, state, sr)
		if err != nil {
			return nil, fmt.Errorf("vad: window %d: %w", i, err)
		}
		state.Free()
		state = outs[1]
		_, err = outs[0].Read(p[:])
		outs[0].Free()
		if err != nil {
			return nil, err
		}
		probs[i] = p[0]
	}
	return probs, nil
}

func main() {}
