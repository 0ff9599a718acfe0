package records

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

func TestFromCSV(t *testing.T) {
	in := "patient,t,hr,spo2\np1,0,72,98\np1,60,,97\np2,0,abc,95.5\n"
	b, n, err := FromCSV(strings.NewReader(in), "v.csv")
	if err != nil || n != 3 {
		t.Fatal(n, err)
	}
	var got struct {
		Records []map[string]any `cbor:"records"`
	}
	if err := cbor.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Records[0]["hr"] != 72.0 || got.Records[0]["patient"] != "p1" {
		t.Fatalf("record 0: %v", got.Records[0])
	}
	if _, ok := got.Records[1]["hr"]; ok {
		t.Fatal("empty cell should be absent")
	}
	if got.Records[2]["hr"] != "abc" {
		t.Fatalf("text cell: %v", got.Records[2])
	}
}

func TestInputErrorsNamePlace(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"empty", "", "v.csv:1: empty file"},
		{"field count", "a,b\n1,2\n3\n", "v.csv:3: column 1: wrong number of fields"},
		{"repeated column", "a,a\n1,2\n", `v.csv:1: field "a": column name repeated`},
		{"empty column", "a,,c\n", "v.csv:1: column 2 has an empty name"},
		{"bare quote", "a,b\n1,\"x\n", "v.csv:2"},
		{"nan", "a,b\n1,2\n3,NaN\n", `v.csv:3: field "b": "NaN" is not a finite number`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := FromCSV(strings.NewReader(c.in), "v.csv")
			var re *Error
			if !errors.As(err, &re) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
	if err := CheckCBOR([]byte{0xa1, 0x61}, "in.cbor"); err == nil || !strings.Contains(err.Error(), "in.cbor") {
		t.Fatalf("truncated CBOR: %v", err)
	}
	if err := CheckCBOR([]byte{0x01, 0x02}, "in.cbor"); err == nil || !strings.Contains(err.Error(), "at byte 1: 1 bytes of trailing data") {
		t.Fatalf("trailing data: %v", err)
	}
	if _, err := FromJSON([]byte("{\n\"a\": [1,\n}"), "in.json"); err == nil || !strings.Contains(err.Error(), "in.json:3") {
		t.Fatalf("bad JSON: %v", err)
	}
}

func TestToJSON(t *testing.T) {
	b, _ := cbor.Marshal(map[any]any{1: []byte{1, 2}, "x": 1.5})
	j, err := ToJSON(b)
	if err != nil || !bytes.Contains(j, []byte(`"1": "AQI="`)) || !bytes.Contains(j, []byte(`"x": 1.5`)) {
		t.Fatalf("%s %v", j, err)
	}
}

func FuzzFromCSV(f *testing.F) {
	f.Add("a,b\n1,2\n")
	f.Add("patient,hr\n\"p,1\",72\n")
	f.Fuzz(func(t *testing.T, in string) {
		b, _, err := FromCSV(strings.NewReader(in), "f.csv")
		if err == nil {
			if err := CheckCBOR(b, "f.cbor"); err != nil {
				t.Fatalf("FromCSV produced invalid CBOR: %v", err)
			}
		}
	})
}

func FuzzCBOR(f *testing.F) {
	f.Add([]byte{0xa1, 0x61, 0x61, 0x01})
	f.Add([]byte{0x9f, 0x9f, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		if CheckCBOR(in, "f.cbor") == nil {
			if _, err := ToJSON(in); err != nil {
				t.Fatalf("valid CBOR did not render: %v", err)
			}
		}
	})
}
