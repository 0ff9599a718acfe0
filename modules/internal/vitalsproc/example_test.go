package vitalsproc_test

import (
	"fmt"

	"github.com/fennec-edge/fennec/modules/internal/vitalsproc"
)

func ExampleProcess() {
	var recs []vitalsproc.Record
	for i, hr := range []float64{70, 72, 400, 74, 90} { // 400 is a motion artefact
		r, _ := vitalsproc.FromMap(map[string]any{"patient": "a", "t": float64(i), "hr": hr})
		recs = append(recs, r)
	}
	var st vitalsproc.State // pass it to the next chunk's call
	out, cnt, _ := vitalsproc.Process(vitalsproc.Config{Window: 3}, recs, &st)
	for _, o := range out {
		fmt.Printf("t=%v present=%v clean=%v\n", o.T, o.Present[0], o.Clean[0])
	}
	fmt.Println("dropped hr:", cnt.Dropped[0], "running n:", st.Stats["hr"].N)
	// Output:
	// t=0 present=true clean=70
	// t=1 present=true clean=71
	// t=2 present=false clean=0
	// t=3 present=true clean=72
	// t=4 present=true clean=74
	// dropped hr: 1 running n: 4
}
