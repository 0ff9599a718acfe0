// Package vadseg turns per-window speech probabilities (Silero VAD's, one
// per 512-sample window at 16 kHz) into speech segments with hysteresis,
// as Silero's get_speech_timestamps does: speech starts at the first
// window at or above Threshold, ends at the first window below
// NegThreshold that stays below it for MinSilence, segments shorter than
// MinSpeech are dropped, segments longer than MaxSpeech are split at
// their last long-enough pause (or cut), and each is padded by SpeechPad.
// It is plain Go, used by the vad guest module (modules/vad).
package vadseg

import (
	"fmt"
	"math"
)

// Params are the hysteresis settings. The zero value is Silero's defaults.
type Params struct {
	Threshold    float32 // onset: speech when p >= Threshold; 0 means 0.5
	NegThreshold float32 // offset: silence when p < NegThreshold; 0 means max(Threshold-0.15, 0.01)
	MinSpeechMs  int     // shortest segment kept; 0 means 250
	MinSilenceMs int     // silence that ends a segment; 0 means 100
	SpeechPadMs  int     // padding on each side; 0 means 30, negative means none
	MaxSpeechS   float64 // longest segment before it is split; 0 means unbounded
}

// Validate checks the settings.
func (p Params) Validate() error {
	switch {
	case p.Threshold < 0 || p.Threshold >= 1 || math.IsNaN(float64(p.Threshold)):
		return fmt.Errorf("vad: threshold %v outside [0, 1)", p.Threshold)
	case p.NegThreshold < 0 || p.NegThreshold >= 1 || math.IsNaN(float64(p.NegThreshold)):
		return fmt.Errorf("vad: neg_threshold %v outside [0, 1)", p.NegThreshold)
	case p.NegThreshold > 0 && p.Threshold > 0 && p.NegThreshold > p.Threshold:
		return fmt.Errorf("vad: neg_threshold %v above threshold %v", p.NegThreshold, p.Threshold)
	case p.MinSpeechMs < 0 || p.MinSpeechMs > 3_600_000:
		return fmt.Errorf("vad: min_speech_ms %d outside 0..3600000", p.MinSpeechMs)
	case p.MinSilenceMs < 0 || p.MinSilenceMs > 3_600_000:
		return fmt.Errorf("vad: min_silence_ms %d outside 0..3600000", p.MinSilenceMs)
	case p.SpeechPadMs > 60_000:
		return fmt.Errorf("vad: speech_pad_ms %d above 60000", p.SpeechPadMs)
	case p.MaxSpeechS < 0 || math.IsNaN(p.MaxSpeechS) || math.IsInf(p.MaxSpeechS, 0):
		return fmt.Errorf("vad: max_speech_s %v must be a finite, non-negative number", p.MaxSpeechS)
	}
	return nil
}

func (p Params) withDefaults() Params {
	if p.Threshold == 0 {
		p.Threshold = 0.5
	}
	if p.NegThreshold == 0 {
		p.NegThreshold = max(p.Threshold-0.15, 0.01)
	}
	if p.MinSpeechMs == 0 {
		p.MinSpeechMs = 250
	}
	if p.MinSilenceMs == 0 {
		p.MinSilenceMs = 100
	}
	if p.SpeechPadMs == 0 {
		p.SpeechPadMs = 30
	} else if p.SpeechPadMs < 0 {
		p.SpeechPadMs = 0
	}
	return p
}

// Segment is a speech segment in samples, [Start, End), and the mean
// speech probability of its windows.
type Segment struct {
	Start, End int
	Prob       float32
}

// Segments finds the speech segments in audio of nSamples samples at rate
// Hz whose window-th windows have probabilities probs (window samples
// each, the last one zero-padded).
func Segments(probs []float32, window, rate, nSamples int, p Params) ([]Segment, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if window <= 0 || rate <= 0 || nSamples < 0 {
		return nil, fmt.Errorf("vad: window %d, rate %d, %d samples", window, rate, nSamples)
	}
	if want := (nSamples + window - 1) / window; len(probs) != want {
		return nil, fmt.Errorf("vad: %d probabilities for %d samples in windows of %d (want %d)", len(probs), nSamples, window, want)
	}
	p = p.withDefaults()
	minSpeech := rate * p.MinSpeechMs / 1000
	pad := rate * p.SpeechPadMs / 1000
	minSilence := rate * p.MinSilenceMs / 1000
	minSilenceAtMax := rate * 98 / 1000
	maxSpeech := math.Inf(1)
	if p.MaxSpeechS > 0 {
		maxSpeech = float64(rate)*p.MaxSpeechS - float64(window) - float64(2*pad)
	}

	var (
		speeches                  []Segment
		triggered                 bool
		cur                       Segment
		have                      bool // cur has a start
		tempEnd, prevEnd, nextStr int
	)
	for i, prob := range probs {
		at := window * i
		if prob >= p.Threshold && tempEnd != 0 {
			tempEnd = 0
			if nextStr < prevEnd {
				nextStr = at
			}
		}
		if prob >= p.Threshold && !triggered {
			triggered, cur, have = true, Segment{Start: at}, true
			continue
		}
		if triggered && float64(at-cur.Start) > maxSpeech {
			if prevEnd != 0 {
				cur.End = prevEnd
				speeches = append(speeches, cur)
				if nextStr < prevEnd {
					triggered, have = false, false
				} else {
					cur = Segment{Start: nextStr}
				}
				prevEnd, nextStr, tempEnd = 0, 0, 0
			} else {
				cur.End = at
				speeches = append(speeches, cur)
				prevEnd, nextStr, tempEnd = 0, 0, 0
				triggered, have = false, false
				continue
			}
		}
		if prob < p.NegThreshold && triggered {
			if tempEnd == 0 {
				tempEnd = at
			}
			if at-tempEnd > minSilenceAtMax {
				prevEnd = tempEnd
			}
			if at-tempEnd < minSilence {
				continue
			}
			cur.End = tempEnd
			if cur.End-cur.Start > minSpeech {
				speeches = append(speeches, cur)
			}
			prevEnd, nextStr, tempEnd = 0, 0, 0
			triggered, have = false, false
			continue
		}
	}
	if have && nSamples-cur.Start > minSpeech {
		cur.End = nSamples
		speeches = append(speeches, cur)
	}
	for i := range speeches {
		s := &speeches[i]
		if i == 0 {
			s.Start = max(0, s.Start-pad)
		}
		if i != len(speeches)-1 {
			silence := speeches[i+1].Start - s.End
			if silence < 2*pad {
				s.End += silence / 2
				speeches[i+1].Start = max(0, speeches[i+1].Start-silence/2)
			} else {
				s.End = min(nSamples, s.End+pad)
				speeches[i+1].Start = max(0, speeches[i+1].Start-pad)
			}
		} else {
			s.End = min(nSamples, s.End+pad)
		}
	}
	for i := range speeches {
		s := &speeches[i]
		lo, hi := s.Start/window, min(len(probs), (s.End+window-1)/window)
		var sum float64
		for _, q := range probs[lo:hi] {
			sum += float64(q)
		}
		if hi > lo {
			s.Prob = float32(sum / float64(hi-lo))
		}
	}
	return speeches, nil
}
