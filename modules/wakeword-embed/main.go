// Command wakeword-embed is a fennec guest module: openWakeWord's
// streaming front end, which turns 16 kHz audio into one 96-d speech
// embedding per 80 ms, the features its small wake-word classifiers (and
// one a fleet trains with federation) take. It needs the operator's models
// "melspec" (melspectrogram.onnx) and "embedding" (embedding_model.onnx).
// Its manifest says input = "bytes": a 16 kHz WAV file (any channel count,
// mixed down) or raw 16-bit little-endian mono PCM.
//
// As openWakeWord's AudioFeatures does when streamed: the audio goes in
// steps of 1280 samples (80 ms; a partial last step is dropped); each
// step runs the mel model on its samples and the 480 before them (int16
// values as floats, not scaled to [-1, 1]), scales the new mel frames
// x/10 + 2 and appends them to a buffer of 76 frames that starts as ones;
// the embedding model then runs on the buffer's 76 frames.
//
// Entrypoint embed -> {"sample_rate", "step" (s), "times" (the end of each
// step, s), "embeddings": [[96 floats], ...]}.
package main

import (
	"fmt"

	"github.com/fennec-edge/fennec/modules/internal/wav"
	"github.com/fennec-edge/fennec/sdk"
	"github.com/fennec-edge/fennec/sdk/graph"
)

const (
	step    = 1280 // samples per embedding (80 ms)
	context = 480  // samples before a step the mel model also sees
	frames  = 76   // mel frames per embedding window
	bands   = 32
	dim     = 96
)

type output struct {
	SampleRate int         `cbor:"sample_rate"`
	Step       float64     `cbor:"step"`
	Times      []float64   `cbor:"times"`
	Embeddings [][]float32 `cbor:"embeddings"`
}

var mel, emb *graph.Graph // loaded once per instance

//go:wasmexport embed
func embed(n int32) int32 {
	return sdk.Serve(n, func(in []byte) ([]byte, error) {
		out, err := run(in)
		if err != nil {
			return nil, err
		}
		return sdk.Marshal(out)
	})
}

func load() error {
	if mel != nil && emb != nil {
		return nil
	}
	m, err := graph.Load("melspec")
	if err != nil {
		return fmt.Errorf("wakeword-embed: loading the operator's model \"melspec\" (--nn-preload melspec:onnx:cpu:melspectrogram.onnx): %w", err)
	}
	e, err := graph.Load("embedding")
	if err != nil {
		m.Free()
		return fmt.Errorf("wakeword-embed: loading the operator's model \"embedding\" (--nn-preload embedding:onnx:cpu:embedding_model.onnx): %w", err)
	}
	if len(m.Inputs) != 1 || len(m.Outputs) != 1 || len(e.Inputs) != 1 || len(e.Outputs) != 1 {
		m.Free()
		e.Free()
		return fmt.Errorf("wakeword-embed: the models have %d/%d and %d/%d inputs/outputs; want openWakeWord's melspectrogram and embedding models (1/1 each)", len(m.Inputs), len(m.Outputs), len(e.Inputs), len(e.Outputs))
	}
	mel, emb = m, e
	return nil
}

func run(in []byte) (*output, error) {
	f, data, err := wav.Parse(in, 16000)
	if err != nil {
		return nil, err
	}
	if f.SampleRate != 16000 {
		return nil, fmt.Errorf("wakeword-embed: sample rate %d Hz; the models take 16000 (resample first, e.g. sox in.wav -r 16000 out.wav)", f.SampleRate)
	}
	if err := load(); err != nil {
		return nil, err
	}
	steps := f.Frames(data) / step
	out := &output{SampleRate: 16000, Step: float64(step) / 16000, Times: make([]float64, 0, steps), Embeddings: make([][]float32, 0, steps)}
	if steps == 0 {
		return out, nil
	}
	// The mel frame buffer, oldest first, starting as ones.
	buf := make([]float32, frames*bands)
	for i := range buf {
		buf[i] = 1
	}
	audio := make([]float32, step+context)
	first, err := sdk.Zeros(1, step)
	if err != nil {
		return nil, err
	}
	defer first.Free()
	later, err := sdk.Zeros(1, step+context)
	if err != nil {
		return nil, err
	}
	defer later.Free()
	win, err := sdk.Zeros(1, frames, bands, 1)
	if err != nil {
		return nil, err
	}
	defer win.Free()
	var melOut, embOut []float32
	for s := range steps {
		x := later
		a := audio
		from := s*step - context
		if s == 0 {
			x, a, from = first, audio[:step], 0
		}
		f.Mono(data, from, a)
		for i := range a {
			a[i] *= 32768 // openWakeWord feeds int16 values
		}
		if err := x.Write(a); err != nil {
			return nil, err
		}
		outs, err := mel.Run(x)
		if err != nil {
			return nil, fmt.Errorf("wakeword-embed: step %d: melspec: %w", s, err)
		}
		melOut, err = outs[0].Read(melOut)
		outs[0].Free()
		if err != nil {
			return nil, err
		}
		if len(melOut)%bands != 0 || len(melOut) > len(buf) {
			return nil, fmt.Errorf("wakeword-embed: melspec gave %d values, not whole frames of %d bands", len(melOut), bands)
		}
		copy(buf, buf[len(melOut):])
		tail := buf[len(buf)-len(melOut):]
		for i, v := range melOut {
			tail[i] = v/10 + 2
		}
		if err := win.Write(buf); err != nil {
			return nil, err
		}
		outs, err = emb.Run(win)
		if err != nil {
			return nil, fmt.Errorf("wakeword-embed: step %d: embedding: %w", s, err)
		}
		embOut, err = outs[0].Read(embOut)
		outs[0].Free()
		if err != nil {
			return nil, err
		}
		if len(embOut) != dim {
			return nil, fmt.Errorf("wakeword-embed: embedding gave %d values, want %d", len(embOut), dim)
		}
		out.Times = append(out.Times, float64((s+1)*step)/16000)
		out.Embeddings = append(out.Embeddings, append([]float32(nil), embOut...))
	}
	return out, nil
}

func main() {}
