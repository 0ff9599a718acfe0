package cbor

import (
	"bytes"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// This file is the slow path: values that do not implement Marshaler or
// Unmarshaler, encoded and decoded by reflection over their types, with the
// same output as fxamacker/cbor's core deterministic mode for the types a
// guest uses (structs with `cbor:"..."` or `json:"..."` tags, maps, slices,
// pointers, interfaces, scalars).

var (
	marshalerType   = reflect.TypeFor[Marshaler]()
	unmarshalerType = reflect.TypeFor[Unmarshaler]()
)

// Value writes v: a Marshaler encodes itself, common scalar, slice and map
// types are written directly, anything else goes through reflection. An
// unsupported type (channel, function, complex) sets Err.
func (e *Encoder) Value(v any) {
	switch x := v.(type) {
	case nil:
		e.Null()
	case Marshaler:
		if rv := reflect.ValueOf(x); rv.Kind() == reflect.Pointer && rv.IsNil() {
			e.Null()
			return
		}
		x.EncodeCBOR(e)
	case bool:
		e.Bool(x)
	case string:
		e.Text(x)
	case []byte:
		e.ByteString(x)
	case int:
		e.Int(int64(x))
	case int64:
		e.Int(x)
	case int32:
		e.Int(int64(x))
	case uint64:
		e.Uint(x)
	case uint32:
		e.Uint(uint64(x))
	case uint:
		e.Uint(uint64(x))
	case float64:
		e.Float64(x)
	case float32:
		e.Float32(x)
	case []float64:
		e.Float64s(x)
	case []float32:
		e.Float32s(x)
	case []uint64:
		e.Uint64s(x)
	case []string:
		e.Strings(x)
	case []any:
		if x == nil {
			e.Null()
			return
		}
		e.Array(len(x))
		for _, el := range x {
			e.Value(el)
		}
	case map[string]any:
		EncodeMap(e, x, (*Encoder).Value)
	case map[string]float64:
		EncodeMap(e, x, EncodeFloat64)
	case map[string]uint64:
		EncodeMap(e, x, EncodeUint64)
	case map[string]string:
		EncodeMap(e, x, EncodeString)
	case []map[string]any:
		if x == nil {
			e.Null()
			return
		}
		e.Array(len(x))
		for _, m := range x {
			EncodeMap(e, m, (*Encoder).Value)
		}
	default:
		e.reflectValue(reflect.ValueOf(v))
	}
}

func (e *Encoder) reflectValue(rv reflect.Value) {
	if !rv.IsValid() {
		e.Null()
		return
	}
	t := rv.Type()
	if t.Kind() != reflect.Pointer && t.Kind() != reflect.Interface {
		if t.Implements(marshalerType) {
			rv.Interface().(Marshaler).EncodeCBOR(e)
			return
		}
		if reflect.PointerTo(t).Implements(marshalerType) {
			if !rv.CanAddr() { // a copy makes the pointer method callable
				c := reflect.New(t)
				c.Elem().Set(rv)
				rv = c.Elem()
			}
			rv.Addr().Interface().(Marshaler).EncodeCBOR(e)
			return
		}
	}
	switch t.Kind() {
	case reflect.Bool:
		e.Bool(rv.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.Int(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.Uint(rv.Uint())
	case reflect.Float32, reflect.Float64:
		e.Float64(rv.Float())
	case reflect.String:
		e.Text(rv.String())
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			e.Null()
			return
		}
		if t.Kind() == reflect.Pointer && t.Implements(marshalerType) {
			rv.Interface().(Marshaler).EncodeCBOR(e)
			return
		}
		e.reflectValue(rv.Elem())
	case reflect.Slice:
		if rv.IsNil() {
			e.Null()
			return
		}
		if t.Elem().Kind() == reflect.Uint8 {
			e.head(majorBytes, uint64(rv.Len()))
			e.buf = append(e.buf, rv.Bytes()...)
			return
		}
		fallthrough
	case reflect.Array:
		if t.Kind() == reflect.Array && t.Elem().Kind() == reflect.Uint8 {
			e.head(majorBytes, uint64(rv.Len()))
			for i := range rv.Len() {
				e.buf = append(e.buf, byte(rv.Index(i).Uint()))
			}
			return
		}
		e.Array(rv.Len())
		for i := range rv.Len() {
			e.reflectValue(rv.Index(i))
		}
	case reflect.Map:
		e.reflectMap(rv)
	case reflect.Struct:
		e.reflectStruct(rv)
	default:
		e.fail("cannot encode a value of type " + t.String())
		e.Null()
	}
}

func (e *Encoder) reflectMap(rv reflect.Value) {
	if rv.IsNil() {
		e.Null()
		return
	}
	e.Map(rv.Len())
	// Encode every key on its own to sort the pairs by encoded key bytes.
	type kv struct {
		k, v reflect.Value
		kb   []byte
	}
	pairs := make([]kv, 0, rv.Len())
	var ke Encoder
	it := rv.MapRange()
	for it.Next() {
		ke.buf = nil
		ke.reflectValue(it.Key())
		if ke.err != nil {
			e.fail(ke.err.(*Error).Msg)
		}
		pairs = append(pairs, kv{it.Key(), it.Value(), ke.buf})
	}
	slices.SortFunc(pairs, func(a, b kv) int { return bytes.Compare(a.kb, b.kb) })
	for _, p := range pairs {
		e.buf = append(e.buf, p.kb...)
		e.reflectValue(p.v)
	}
}

// field is one encoded struct field.
type field struct {
	idx       []int
	name      string
	key       []byte // encoded key
	intKey    int64
	keyAsInt  bool
	omitEmpty bool
}

type structInfo struct {
	fields []field        // sorted by encoded key
	byName map[string]int // text key -> index in fields
	byInt  map[int64]int  // integer key -> index in fields
	lower  map[string]int // case-folded text key, for fxamacker's case-insensitive fallback
}

var structCache sync.Map // reflect.Type -> *structInfo

func structFields(t reflect.Type) *structInfo {
	if si, ok := structCache.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{byName: map[string]int{}, byInt: map[int64]int{}, lower: map[string]int{}}
	type cand struct {
		f     field
		depth int
		tag   bool
	}
	var cands []cand
	var walk func(t reflect.Type, idx []int, depth int)
	walk = func(t reflect.Type, idx []int, depth int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			tag, hasTag := sf.Tag.Lookup("cbor")
			if !hasTag {
				tag, hasTag = sf.Tag.Lookup("json")
			}
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			fidx := append(slices.Clone(idx), i)
			if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct {
				if depth < 8 {
					walk(sf.Type, fidx, depth+1)
				}
				continue
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			f := field{idx: fidx, name: name}
			for o := range strings.SplitSeq(opts, ",") {
				switch o {
				case "omitempty":
					f.omitEmpty = true
				case "keyasint":
					if n, err := strconv.ParseInt(name, 10, 64); err == nil {
						f.keyAsInt, f.intKey = true, n
					}
				}
			}
			var ke Encoder
			if f.keyAsInt {
				ke.Int(f.intKey)
			} else {
				ke.Text(name)
			}
			f.key = ke.buf
			cands = append(cands, cand{f, depth, hasTag && name != ""})
		}
	}
	walk(t, nil, 0)
	// Go's rules, as encoding/json: the shallowest field of a name wins; a
	// tie is broken by a tag, and otherwise drops the name.
	for _, c := range cands {
		key := string(c.f.key)
		best, n := c, 0
		for _, o := range cands {
			if string(o.f.key) != key {
				continue
			}
			switch {
			case o.depth < best.depth || o.depth == best.depth && o.tag && !best.tag:
				best, n = o, 1
			case o.depth == best.depth && o.tag == best.tag:
				n++
			}
		}
		if n == 1 && slices.Equal(best.f.idx, c.f.idx) {
			si.fields = append(si.fields, c.f)
		}
	}
	slices.SortFunc(si.fields, func(a, b field) int { return bytes.Compare(a.key, b.key) })
	for i, f := range si.fields {
		if f.keyAsInt {
			si.byInt[f.intKey] = i
		} else {
			si.byName[f.name] = i
			if _, dup := si.lower[strings.ToLower(f.name)]; !dup {
				si.lower[strings.ToLower(f.name)] = i
			}
		}
	}
	v, _ := structCache.LoadOrStore(t, si)
	return v.(*structInfo)
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.String, reflect.Slice, reflect.Map, reflect.Array:
		return v.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return v.IsNil()
	}
	return false
}

func (e *Encoder) reflectStruct(rv reflect.Value) {
	si := structFields(rv.Type())
	n := 0
	for i := range si.fields {
		if !si.fields[i].omitEmpty || !isEmpty(rv.FieldByIndex(si.fields[i].idx)) {
			n++
		}
	}
	e.Map(n)
	for i := range si.fields {
		f := &si.fields[i]
		fv := rv.FieldByIndex(f.idx)
		if f.omitEmpty && isEmpty(fv) {
			continue
		}
		e.buf = append(e.buf, f.key...)
		e.reflectValue(fv)
	}
}

// Value decodes one item into v, a non-nil pointer: an Unmarshaler decodes
// itself, common types are read directly, anything else through
// reflection (see the package comment for the rules).
func (d *Decoder) Value(v any) error {
	var err error
	switch x := v.(type) {
	case Unmarshaler:
		if rv := reflect.ValueOf(x); rv.Kind() == reflect.Pointer && rv.IsNil() {
			return &Error{Offset: d.off, Msg: "decode into a nil " + rv.Type().String()}
		}
		return x.DecodeCBOR(d)
	case *any:
		*x, err = d.Any()
	case *string:
		*x, err = d.Text()
	case *float64:
		*x, err = d.Float()
	case *uint64:
		*x, err = d.Uint()
	case *bool:
		*x, err = d.Bool()
	case *[]byte:
		*x, err = d.Bytes()
	case *[]float64:
		*x, err = d.Float64s(nil)
	default:
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Pointer || rv.IsNil() {
			return &Error{Offset: d.off, Msg: "decode into a non-pointer or nil " + reflect.TypeOf(v).String()}
		}
		return d.reflectValue(rv.Elem())
	}
	return err
}

func (d *Decoder) reflectValue(rv reflect.Value) error {
	t := rv.Type()
	if t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(unmarshalerType) {
		return rv.Addr().Interface().(Unmarshaler).DecodeCBOR(d)
	}
	// Tags are not interpreted on this path: decode their content.
	for d.Peek() == KindTag {
		if _, _, _, err := d.head(); err != nil {
			return err
		}
	}
	if d.Peek() == KindNull {
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
			d.off++
			rv.SetZero()
			return nil
		}
	}
	start := d.off
	switch t.Kind() {
	case reflect.Bool:
		b, err := d.Bool()
		rv.SetBool(b)
		return err
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := d.Int()
		if err == nil && rv.OverflowInt(i) {
			return d.errAt(start, strconv.FormatInt(i, 10)+" overflows "+t.String())
		}
		rv.SetInt(i)
		return err
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		u, err := d.Uint()
		if err == nil && rv.OverflowUint(u) {
			return d.errAt(start, strconv.FormatUint(u, 10)+" overflows "+t.String())
		}
		rv.SetUint(u)
		return err
	case reflect.Float32, reflect.Float64:
		f, err := d.Float()
		rv.SetFloat(f)
		return err
	case reflect.String:
		s, err := d.Text()
		rv.SetString(s)
		return err
	case reflect.Pointer:
		if rv.IsNil() {
			rv.Set(reflect.New(t.Elem()))
		}
		return d.reflectValue(rv.Elem())
	case reflect.Interface:
		if t.NumMethod() == 0 {
			v, err := d.Any()
			if err == nil && v != nil {
				rv.Set(reflect.ValueOf(v))
			} else if err == nil {
				rv.SetZero()
			}
			return err
		}
		if !rv.IsNil() && rv.Elem().Kind() == reflect.Pointer && !rv.Elem().IsNil() {
			return d.reflectValue(rv.Elem().Elem())
		}
		return d.errAt(start, "cannot decode into interface "+t.String())
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			b, err := d.Bytes()
			if err == nil {
				rv.SetBytes(b)
			}
			return err
		}
		n, err := d.Array()
		if err != nil {
			return err
		}
		if err := d.Enter(); err != nil {
			return err
		}
		defer d.Leave()
		s := reflect.MakeSlice(t, 0, Cap(n))
		for i := 0; d.More(&n); i++ {
			s = reflect.Append(s, reflect.Zero(t.Elem()))
			if err := d.reflectValue(s.Index(i)); err != nil {
				return Elem(i, err)
			}
		}
		rv.Set(s)
		return nil
	case reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && d.Peek() == KindBytes {
			b, err := d.Bytes()
			reflect.Copy(rv, reflect.ValueOf(b))
			return err
		}
		n, err := d.Array()
		if err != nil {
			return err
		}
		if err := d.Enter(); err != nil {
			return err
		}
		defer d.Leave()
		for i := 0; d.More(&n); i++ {
			if i >= rv.Len() {
				if err := d.Skip(); err != nil {
					return err
				}
				continue
			}
			if err := d.reflectValue(rv.Index(i)); err != nil {
				return Elem(i, err)
			}
		}
		return nil
	case reflect.Map:
		n, err := d.Map()
		if err != nil {
			return err
		}
		if err := d.Enter(); err != nil {
			return err
		}
		defer d.Leave()
		if rv.IsNil() {
			rv.Set(reflect.MakeMapWithSize(t, Cap(n)))
		}
		for d.More(&n) {
			k := reflect.New(t.Key()).Elem()
			if err := d.reflectValue(k); err != nil {
				return err
			}
			if !k.Comparable() {
				return d.errAt(start, "map key of type "+k.Type().String()+" is not comparable")
			}
			v := reflect.New(t.Elem()).Elem()
			if err := d.reflectValue(v); err != nil {
				return Field(keyString(k), err)
			}
			rv.SetMapIndex(k, v)
		}
		return nil
	case reflect.Struct:
		return d.reflectStruct(rv)
	}
	return d.errAt(start, "cannot decode into a value of type "+t.String())
}

func keyString(k reflect.Value) string {
	switch k.Kind() {
	case reflect.String:
		return k.String()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(k.Int(), 10)
	}
	return "?"
}

func (d *Decoder) reflectStruct(rv reflect.Value) error {
	si := structFields(rv.Type())
	n, err := d.Map()
	if err != nil {
		return err
	}
	if err := d.Enter(); err != nil {
		return err
	}
	defer d.Leave()
	for d.More(&n) {
		fi, ok := -1, false
		var name string
		switch d.Peek() {
		case KindText:
			k, err := d.Key()
			if err != nil {
				return err
			}
			if fi, ok = si.byName[string(k)]; !ok {
				fi, ok = si.lower[strings.ToLower(string(k))]
			}
			name = string(k)
		case KindUint, KindNegInt:
			k, err := d.Int()
			if err != nil {
				return err
			}
			fi, ok = si.byInt[k]
			name = strconv.FormatInt(k, 10)
		default:
			if err := d.Skip(); err != nil { // a key of another type names no field
				return err
			}
		}
		if !ok {
			if err := d.Skip(); err != nil {
				return err
			}
			continue
		}
		if err := d.reflectValue(rv.FieldByIndex(si.fields[fi].idx)); err != nil {
			return Field(name, err)
		}
	}
	return nil
}
