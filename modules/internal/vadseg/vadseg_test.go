package vadseg

import (
	"reflect"
	"strings"
	"testing"
)

// run builds a probability track from (value, windows) runs.
func track(runs ...any) []float32 {
	var p []float32
	for i := 0; i < len(runs); i += 2 {
		for range runs[i+1].(int) {
			p = append(p, float32(runs[i].(float64)))
		}
	}
	return p
}

func TestSegments(t *testing.T) {
	const w, sr = 512, 16000
	cases := []struct {
		name  string
		probs []float32
		p     Params
		want  [][2]int
	}{
		// Two bursts of 20 windows with 20 windows of silence between:
		// starts at the first speech window, ends where silence began,
		// padded by 30 ms (480 samples) on each side.
		{"two segments", track(0.1, 10, 0.9, 20, 0.1, 20, 0.9, 20, 0.1, 10), Params{}, [][2]int{{10*w - 480, 30*w + 480}, {50*w - 480, 70*w + 480}}},
		// A 5-window blip (160 ms) is shorter than min_speech (250 ms).
		{"short blip dropped", track(0.1, 10, 0.9, 5, 0.1, 20), Params{}, nil},
		// 0.4 is below the onset but above the offset (0.35): no end.
		{"hysteresis holds", track(0.1, 10, 0.9, 10, 0.4, 20, 0.9, 10, 0.1, 10), Params{}, [][2]int{{10*w - 480, 50*w + 480}}},
		// A 2-window dip (64 ms) is shorter than min_silence (100 ms).
		{"short pause bridged", track(0.1, 10, 0.9, 10, 0.1, 2, 0.9, 10, 0.1, 10), Params{}, [][2]int{{10*w - 480, 32*w + 480}}},
		// Speech to the end of the audio ends at the last sample.
		{"open at the end", track(0.1, 10, 0.9, 20), Params{}, [][2]int{{10*w - 480, 30 * w}}},
		// Close segments share the gap between them when it is shorter
		// than twice the padding.
		// (5 windows = 2560 samples < 2 x 1600: each gets half.)
		{"pads meet", track(0.9, 10, 0.1, 5, 0.9, 10), Params{SpeechPadMs: 100}, [][2]int{{0, 10*w + 1280}, {15*w - 1280, 25 * w}}},
		// max_speech (0.5 s: 8000 - 512 samples) cuts a long segment
		// with no pause in it; speech resumes at the next window.
		{"max speech", track(0.9, 40), Params{MaxSpeechS: 0.5, SpeechPadMs: -1}, [][2]int{{0, 15 * w}, {16 * w, 31 * w}, {32 * w, 40 * w}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			segs, err := Segments(c.probs, w, sr, len(c.probs)*w, c.p)
			if err != nil {
				t.Fatal(err)
			}
			var got [][2]int
			for _, s := range segs {
				got = append(got, [2]int{s.Start, s.End})
				if s.Prob <= 0.5 {
					t.Errorf("segment %v: mean prob %v", s, s.Prob)
				}
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestSegmentsErrors(t *testing.T) {
	cases := []struct {
		p     Params
		probs int
		msg   string
	}{
		{Params{Threshold: 1.5}, 2, "threshold"},
		{Params{Threshold: 0.3, NegThreshold: 0.6}, 2, "above threshold"},
		{Params{MinSilenceMs: -1}, 2, "min_silence_ms"},
		{Params{}, 3, "want 2"},
	}
	for _, c := range cases {
		_, err := Segments(make([]float32, c.probs), 512, 16000, 1000, c.p)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%+v: got %v, want %q", c.p, err, c.msg)
		}
	}
}
