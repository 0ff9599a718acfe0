package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"reflect"

	"github.com/fxamacker/cbor/v2"
)

// Media types a binding speaks.
const (
	MediaCBOR = "application/cbor"
	MediaJSON = "application/json"
)

// Limits on what a request may nest or hold, below the decoders' own.
const (
	maxNesting  = 32
	maxElements = 1 << 17
)

var (
	decMode, _ = cbor.DecOptions{
		MaxNestedLevels:  maxNesting,
		MaxArrayElements: maxElements,
		MaxMapPairs:      maxElements,
		DefaultMapType:   mapType,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IndefLength:      cbor.IndefLengthAllowed,
	}.DecMode()
	encMode, _ = cbor.CoreDetEncOptions().EncMode()
	mapType    = typeOfMap()
)

// ErrMalformed: a request body that is not valid CBOR or JSON.
var ErrMalformed = errors.New("malformed request body")

// mediaFormat returns FormatCBOR or FormatJSON for a Content-Type, or "".
func mediaFormat(contentType string) string {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return ""
	}
	switch mt {
	case MediaCBOR:
		return FormatCBOR
	case MediaJSON:
		return FormatJSON
	}
	return ""
}

// DecodeRequest turns a request body in format (FormatCBOR or FormatJSON)
// into the CBOR a module reads. CBOR is checked to be one well-formed item
// and passed on as is; JSON is converted (integers stay integers, other
// numbers become float64). Errors wrap ErrMalformed and say where.
func DecodeRequest(format string, body []byte) ([]byte, error) {
	switch format {
	case FormatCBOR:
		if err := decMode.Wellformed(body); err != nil {
			return nil, fmt.Errorf("%w: CBOR: %v", ErrMalformed, err)
		}
		return body, nil
	case FormatJSON:
		d := json.NewDecoder(bytes.NewReader(body))
		d.UseNumber()
		v, err := jsonValue(d, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: JSON at byte %d: %v", ErrMalformed, d.InputOffset(), err)
		}
		if _, err := d.Token(); err != io.EOF {
			return nil, fmt.Errorf("%w: JSON at byte %d: data after the value", ErrMalformed, d.InputOffset())
		}
		out, err := encMode.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: unknown format %q", ErrMalformed, format)
}

// jsonValue reads one JSON value with bounded nesting and size.
func jsonValue(d *json.Decoder, depth int) (any, error) {
	if depth > maxNesting {
		return nil, fmt.Errorf("nested deeper than %d", maxNesting)
	}
	t, err := d.Token()
	if err != nil {
		if err == io.EOF {
			return nil, errors.New("empty body")
		}
		return nil, err
	}
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '[':
			var a []any
			for d.More() {
				if len(a) >= maxElements {
					return nil, fmt.Errorf("an array of more than %d elements", maxElements)
				}
				v, err := jsonValue(d, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := d.Token(); err != nil {
				return nil, err
			}
			if a == nil {
				a = []any{}
			}
			return a, nil
		case '{':
			m := map[string]any{}
			for d.More() {
				if len(m) >= maxElements {
					return nil, fmt.Errorf("an object of more than %d members", maxElements)
				}
				k, err := d.Token()
				if err != nil {
					return nil, err
				}
				ks, _ := k.(string)
				if _, dup := m[ks]; dup {
					return nil, fmt.Errorf("key %q given twice", ks)
				}
				v, err := jsonValue(d, depth+1)
				if err != nil {
					return nil, err
				}
				m[ks] = v
			}
			if _, err := d.Token(); err != nil {
				return nil, err
			}
			return m, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i, nil
		}
		f, err := t.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %s: %v", t, err)
		}
		return f, nil
	default:
		return t, nil // string, bool, nil
	}
}

// EncodeResponse turns a module's CBOR output into format.
func EncodeResponse(format string, out []byte) ([]byte, error) {
	if format == FormatCBOR {
		return out, nil
	}
	if len(out) == 0 {
		return []byte("null"), nil
	}
	var v any
	if err := decMode.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("the module's output is not CBOR: %v", err)
	}
	v, err := jsonable(v, 0)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// jsonable converts decoded CBOR to values encoding/json takes: map keys
// to strings, NaN and infinities refused.
func jsonable(v any, depth int) (any, error) {
	if depth > maxNesting {
		return nil, fmt.Errorf("output nested deeper than %d", maxNesting)
	}
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			c, err := jsonable(e, depth+1)
			if err != nil {
				return nil, err
			}
			v[k] = c
		}
		return v, nil
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			c, err := jsonable(e, depth+1)
			if err != nil {
				return nil, err
			}
			m[fmt.Sprint(k)] = c
		}
		return m, nil
	case []any:
		for i, e := range v {
			c, err := jsonable(e, depth+1)
			if err != nil {
				return nil, err
			}
			v[i] = c
		}
		return v, nil
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("the output holds %v, which JSON cannot represent; ask for %s", v, MediaCBOR)
		}
	case float32:
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("the output holds %v, which JSON cannot represent; ask for %s", v, MediaCBOR)
		}
	case cbor.Tag:
		return jsonable(v.Content, depth+1)
	}
	return v, nil
}

// encodeError is an error reply's body in format.
func encodeError(format, reason, msg string) []byte {
	m := map[string]string{"error": msg, "reason": reason}
	if format == FormatCBOR {
		b, _ := encMode.Marshal(m)
		return b
	}
	b, _ := json.Marshal(m)
	return b
}

func typeOfMap() reflect.Type { return reflect.TypeOf(map[string]any(nil)) }
