package nn

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

// MaxNPYElements bounds the tensors ReadNPY accepts (1 GiB of f32).
const MaxNPYElements = 1 << 28

var npyMagic = []byte("\x93NUMPY")

var npyDescr = map[string]DType{"<f4": Float32, "<i8": Int64, "<i4": Int32, "|b1": Bool, "|u1": Uint8, "|i1": Int8}

// ReadNPY decodes a NumPy .npy file (format 1.0-3.0, little-endian, C order)
// of dtype f4, i8, i4, b1, u1 or i1.
func ReadNPY(r io.Reader) (*Tensor, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, fmt.Errorf("npy: header: %w", err)
	}
	if !bytes.Equal(pre[:6], npyMagic) {
		return nil, fmt.Errorf("npy: not a .npy file (bad magic)")
	}
	var hlen int
	switch pre[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("npy: header: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("npy: header: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint32(b[:]))
	default:
		return nil, fmt.Errorf("npy: unsupported format version %d", pre[6])
	}
	if hlen > 1<<16 {
		return nil, fmt.Errorf("npy: header of %d bytes is too long", hlen)
	}
	h := make([]byte, hlen)
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, fmt.Errorf("npy: header: %w", err)
	}
	descr, fortran, shape, err := parseNPYHeader(string(h))
	if err != nil {
		return nil, err
	}
	if fortran {
		return nil, fmt.Errorf("npy: Fortran-order arrays are not supported")
	}
	dt, ok := npyDescr[descr]
	if !ok {
		return nil, fmt.Errorf("npy: unsupported dtype %q (want <f4, <i8, <i4, |b1, |u1 or |i1)", descr)
	}
	t, err := New(dt, shape, MaxNPYElements)
	if err != nil {
		return nil, fmt.Errorf("npy: %w", err)
	}
	raw := make([]byte, t.Len()*dt.Size())
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, fmt.Errorf("npy: data of %v: %w", t, err)
	}
	switch dt {
	case Float32:
		for i := range t.F32 {
			t.F32[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case Int64:
		for i := range t.I64 {
			t.I64[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	case Int32:
		for i := range t.I32 {
			t.I32[i] = int32(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	default:
		copy(t.U8, raw)
	}
	return t, nil
}

// parseNPYHeader reads the Python dict literal of a .npy header.
func parseNPYHeader(h string) (descr string, fortran bool, shape []int, err error) {
	h = strings.TrimSpace(h)
	field := func(key string) (string, error) {
		i := strings.Index(h, "'"+key+"'")
		if i < 0 {
			return "", fmt.Errorf("npy: header has no %q: %q", key, h)
		}
		rest := strings.TrimSpace(h[i+len(key)+2:])
		if !strings.HasPrefix(rest, ":") {
			return "", fmt.Errorf("npy: bad header near %q", key)
		}
		return strings.TrimSpace(rest[1:]), nil
	}
	v, err := field("descr")
	if err != nil {
		return
	}
	if len(v) < 2 || v[0] != '\'' || strings.IndexByte(v[1:], '\'') < 0 {
		return "", false, nil, fmt.Errorf("npy: bad descr in %q", h)
	}
	descr = v[1 : 1+strings.IndexByte(v[1:], '\'')]
	if v, err = field("fortran_order"); err != nil {
		return
	}
	fortran = strings.HasPrefix(v, "True")
	if v, err = field("shape"); err != nil {
		return
	}
	end := strings.IndexByte(v, ')')
	if !strings.HasPrefix(v, "(") || end < 0 {
		return "", false, nil, fmt.Errorf("npy: bad shape in %q", h)
	}
	shape = []int{}
	for _, p := range strings.Split(v[1:end], ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		d, perr := strconv.Atoi(strings.TrimSuffix(p, "L"))
		if perr != nil || d < 0 {
			return "", false, nil, fmt.Errorf("npy: bad dimension %q", p)
		}
		shape = append(shape, d)
	}
	return descr, fortran, shape, nil
}

// WriteNPY encodes t as a version 1.0 .npy file.
func WriteNPY(w io.Writer, t *Tensor) error {
	if err := t.Check(); err != nil {
		return err
	}
	var descr string
	for k, v := range npyDescr {
		if v == t.DType {
			descr = k
		}
	}
	if descr == "" {
		return fmt.Errorf("npy: cannot write dtype %v", t.DType)
	}
	dims := make([]string, len(t.Shape))
	for i, d := range t.Shape {
		dims[i] = strconv.Itoa(d)
	}
	sh := strings.Join(dims, ", ")
	if len(t.Shape) == 1 {
		sh += ","
	}
	h := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, sh)
	pad := 64 - (10+len(h)+1)%64
	if pad == 64 {
		pad = 0
	}
	h += strings.Repeat(" ", pad) + "\n"
	var buf bytes.Buffer
	buf.Write(npyMagic)
	buf.Write([]byte{1, 0})
	binary.Write(&buf, binary.LittleEndian, uint16(len(h)))
	buf.WriteString(h)
	var tmp [8]byte
	switch t.DType {
	case Float32:
		for _, f := range t.F32 {
			binary.LittleEndian.PutUint32(tmp[:], math.Float32bits(f))
			buf.Write(tmp[:4])
		}
	case Int64:
		for _, v := range t.I64 {
			binary.LittleEndian.PutUint64(tmp[:], uint64(v))
			buf.Write(tmp[:8])
		}
	case Int32:
		for _, v := range t.I32 {
			binary.LittleEndian.PutUint32(tmp[:], uint32(v))
			buf.Write(tmp[:4])
		}
	default:
		buf.Write(t.U8)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// ReadNPYFile reads the .npy file at path; errors name the file.
func ReadNPYFile(path string) (*Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := ReadNPY(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// WriteNPYFile writes t to a .npy file at path; errors name the file.
func WriteNPYFile(path string, t *Tensor) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteNPY(f, t); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
