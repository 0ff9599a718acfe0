package gpu

import (
	"runtime"
	"testing"
)

// TestFreedStorageIsReused: a large tensor allocated and freed in a loop
// reuses one buffer (the Go heap does not grow by the loop's total), a
// reused buffer reads as zeros, and the kept bytes stay within spareMax.
func TestFreedStorageIsReused(t *testing.T) {
	c, err := NewCPUWithConfig(CPUConfig{})
	if err != nil {
		t.Fatal(err)
	}
	shape := []int{1024, 1024} // 4 MiB of f32
	ones := make([]byte, 4<<20)
	for i := 3; i < len(ones); i += 4 {
		ones[i] = 0x3f // 0x3f000000 = 0.5
	}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	for range 32 {
		x, err := c.New(F32, shape)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := c.F32Data(x)
		for i, v := range d {
			if v != 0 {
				t.Fatalf("a reused buffer is not zeroed: element %d is %v", i, v)
			}
		}
		if err := c.Write(x, ones); err != nil {
			t.Fatal(err)
		}
		c.Free(x)
	}
	runtime.ReadMemStats(&ms)
	if grown := ms.TotalAlloc - before; grown > 16<<20 {
		t.Fatalf("32 cycles of a 4 MiB tensor allocated %d MiB: freed storage is not reused", grown>>20)
	}
	// Kept storage is bounded, whatever is freed.
	var ts []Tensor
	for range 20 {
		x, err := c.New(I8, shape)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, x)
	}
	for _, x := range ts {
		c.Free(x)
	}
	if b := c.SpareBytes(); b > spareMax || b == 0 {
		t.Fatalf("kept %d bytes, want 0 < kept <= %d", b, spareMax)
	}
	if c.LiveBytes() != 0 {
		t.Fatalf("live bytes %d after freeing everything", c.LiveBytes())
	}
}
