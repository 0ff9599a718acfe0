// Command split writes the WDBC experiment's data for the Flower side by
// side (bench/flower): the same standardised 80/20 train/test split and the
// same non-IID shards (Dirichlet label skew) that `fennec demo --data` uses,
// as one CSV per device (features, label last) and test.csv, so Flower's
// clients and fennec's agents train on identical rows.
//
// usage: go run ./bench/flower/split -data wdbc.csv -devices 10 -skew 0.5 -seed 1 -out DIR
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/internal/atomicfile"
)

func main() {
	data := flag.String("data", "", "CSV data set (numeric features, integer label last)")
	devices := flag.Int("devices", 10, "devices")
	skew := flag.Float64("skew", 0.5, "non-IID label skew (0 = IID), as fennec demo --skew")
	seed := flag.Uint64("seed", 1, "seed of the split and the shards")
	out := flag.String("out", "", "output directory")
	flag.Parse()
	if err := run(*data, *devices, *skew, *seed, *out); err != nil {
		fmt.Fprintln(os.Stderr, "split:", err)
		os.Exit(1)
	}
}

func run(path string, devices int, skew float64, seed uint64, out string) error {
	if path == "" || out == "" || devices < 1 {
		return fmt.Errorf("need -data, -out and -devices >= 1")
	}
	d, err := federation.LoadCSV(path, 0.2, seed)
	if err != nil {
		return err
	}
	shards, err := d.Shards(devices, skew, seed)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	f := d.Features
	write := func(name string, x []float32, y []int32, rows []int) error {
		var b []byte
		for _, r := range rows {
			for j := 0; j < f; j++ {
				b = strconv.AppendFloat(b, float64(x[r*f+j]), 'g', -1, 32)
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(y[r]), 10)
			b = append(b, '\n')
		}
		return atomicfile.WriteFile(filepath.Join(out, name), b, 0o644)
	}
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	for i, s := range shards {
		pos := 0
		for _, r := range s {
			pos += int(d.TrainY[r])
		}
		if err := write(fmt.Sprintf("device-%d.csv", i), d.TrainX, d.TrainY, s); err != nil {
			return err
		}
		fmt.Fprintf(w, "device-%d.csv %d rows, %d positive\n", i, len(s), pos)
	}
	all := make([]int, len(d.TestY))
	for i := range all {
		all[i] = i
	}
	fmt.Fprintf(w, "test.csv %d rows, %d features\n", len(all), f)
	return write("test.csv", d.TestX, d.TestY, all)
}
