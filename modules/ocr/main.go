// Command ocr reads the text lines of an image (entrypoint "ocr"): the input
// is the raw bytes of a PNG, JPEG or binary PGM/PPM file (at most 8192 px a
// side, 16 Mpx), the output CBOR
//
//	{"width": int, "height": int,
//	 "lines": [{"box": [[x, y] x 4, clockwise from top left], "text": tstr, "score": float}]}
//
// with lines top to bottom. It runs PaddleOCR v4's pipeline on the
// operator's models, granted as ocr-det (ch_PP-OCRv4_det_infer.onnx),
// ocr-cls (ch_ppocr_mobile_v2.0_cls_infer.onnx) and ocr-rec
// (ch_PP-OCRv4_rec_infer.onnx): detection map -> DB boxes -> upright crops
// -> 0/180 degree classifier (a crop is turned when it says 180 with
// p > 0.9) -> recognition -> CTC greedy decoding with the dictionary
// ppocr_keys_v1.txt (embedded; from the same npm package as the models).
// The models run on the host; the recognition's per-step argmax and max are
// host tensor ops, so only T indices and T scores per line enter the guest.
package main

import (
	_ "embed"
	"fmt"
	"strings"

	"github.com/fennec-edge/fennec/modules/internal/ocrproc"
	"github.com/fennec-edge/fennec/sdk"
	"github.com/fennec-edge/fennec/sdk/graph"
)

//go:embed ppocr_keys_v1.txt
var keys string

const (
	detLimit    = 960  // det input's long side
	recHeight   = 48   // crop height for cls and rec
	clsWidth    = 192  // cls input width
	recMaxW     = 3200 // rec input's widest (a 1:66 line)
	dropScore   = 0.5  // lines recognised with a lower score are left out
	clsThresh   = 0.9
	unclipRatio = 2.5 // docs/RATIONALE.md: 1.5 loses the spaces of Latin lines; 2.5 keeps the word gaps (see BENCHMARKS.md, OCR accuracy)
)

type line struct {
	Box   [4][2]float64 `cbor:"box"`
	Text  string        `cbor:"text"`
	Score float32       `cbor:"score"`
}

type response struct {
	Width  int    `cbor:"width"`
	Height int    `cbor:"height"`
	Lines  []line `cbor:"lines"`
}

var (
	dict          = ocrproc.ParseDict(keys)
	det, cls, rec *graph.Graph // loaded once per instance
)

func load() error {
	if rec != nil {
		return nil
	}
	var err error
	for _, g := range []struct {
		name string
		dst  **graph.Graph
	}{{"ocr-det", &det}, {"ocr-cls", &cls}, {"ocr-rec", &rec}} {
		if *g.dst != nil {
			continue
		}
		if *g.dst, err = graph.Load(g.name); err != nil {
			return fmt.Errorf("model %s: %w", g.name, err)
		}
		if len((*g.dst).Inputs) != 1 || len((*g.dst).Outputs) != 1 {
			return fmt.Errorf("model %s: %d inputs and %d outputs, want 1 and 1", g.name, len((*g.dst).Inputs), len((*g.dst).Outputs))
		}
	}
	return nil
}

//go:wasmexport ocr
func ocr(n int32) int32 { return sdk.Serve(n, handle) }

func handle(in []byte) ([]byte, error) {
	img, err := ocrproc.Decode(in, ocrproc.Limits{})
	if err != nil {
		return nil, err
	}
	if err := load(); err != nil {
		return nil, err
	}
	boxes, err := detect(img)
	if err != nil {
		return nil, err
	}
	resp := response{Width: img.W, Height: img.H, Lines: []line{}}
	for i, b := range boxes {
		crop, err := ocrproc.Crop(img, b)
		if err != nil {
			return nil, fmt.Errorf("box %d: %w", i, err)
		}
		if err := orient(crop); err != nil {
			return nil, fmt.Errorf("box %d: cls: %w", i, err)
		}
		text, score, err := recognise(crop)
		if err != nil {
			return nil, fmt.Errorf("box %d: rec: %w", i, err)
		}
		if score < dropScore {
			continue
		}
		// The wider unclip margin reads as a leading or trailing space.
		l := line{Text: strings.TrimSpace(text), Score: score}
		for j, p := range b {
			l.Box[j] = [2]float64{p.X, p.Y}
		}
		resp.Lines = append(resp.Lines, l)
	}
	return sdk.Marshal(resp)
}

// run runs g on one f32 CHW image of batch 1 and returns its one output.
func run(g *graph.Graph, data []float32, w, h int) (*sdk.Tensor, error) {
	x, err := sdk.FromF32([]int{1, 3, h, w}, data)
	if err != nil {
		return nil, err
	}
	defer x.Free()
	outs, err := g.Run(x)
	if err != nil {
		return nil, err
	}
	return outs[0], nil
}

func detect(img *ocrproc.Image) ([]ocrproc.Box, error) {
	w, h := ocrproc.DetSize(img.W, img.H, detLimit)
	out, err := run(det, ocrproc.DetInput(img, w, h), w, h)
	if err != nil {
		return nil, fmt.Errorf("det: %w", err)
	}
	defer out.Free()
	shape, err := out.Shape()
	if err != nil {
		return nil, err
	}
	if len(shape) != 4 || shape[0] != 1 || shape[1] != 1 || shape[2] != h || shape[3] != w {
		return nil, fmt.Errorf("det: output shape %v, want [1 1 %d %d]", shape, h, w)
	}
	prob, err := out.Read(nil)
	if err != nil {
		return nil, err
	}
	return ocrproc.DBPostprocess(prob, w, h, img.W, img.H, ocrproc.DBOptions{UnclipRatio: unclipRatio})
}

// orient turns crop upside down when the classifier is sure it is.
func orient(crop *ocrproc.Image) error {
	out, err := run(cls, ocrproc.LineInput(crop, clsWidth, recHeight), clsWidth, recHeight)
	if err != nil {
		return err
	}
	defer out.Free()
	p, err := out.Read(nil)
	if err != nil {
		return err
	}
	if len(p) != 2 {
		return fmt.Errorf("output has %d values, want 2 (0 and 180 degrees)", len(p))
	}
	if p[1] > p[0] && p[1] > clsThresh {
		crop.Rotate180()
	}
	return nil
}

func recognise(crop *ocrproc.Image) (string, float32, error) {
	w := ocrproc.RecWidth(crop, recHeight, recMaxW)
	out, err := run(rec, ocrproc.LineInput(crop, w, recHeight), w, recHeight)
	if err != nil {
		return "", 0, err
	}
	defer out.Free()
	shape, err := out.Shape()
	if err != nil {
		return "", 0, err
	}
	if len(shape) != 3 || shape[0] != 1 || shape[2] != len(dict) {
		return "", 0, fmt.Errorf("output shape %v, want [1 T %d] (the dictionary's %d characters, blank and space)", shape, len(dict), len(dict)-2)
	}
	idxT, err := sdk.ArgMax(out, 2, nil)
	if err != nil {
		return "", 0, err
	}
	defer idxT.Free()
	maxT, err := sdk.Max(out, 2, false, nil)
	if err != nil {
		return "", 0, err
	}
	defer maxT.Free()
	idx, err := idxT.ReadI32(nil)
	if err != nil {
		return "", 0, err
	}
	prob, err := maxT.Read(nil)
	if err != nil {
		return "", 0, err
	}
	return ocrproc.CTCDecode(idx, prob, dict)
}

func main() {}
