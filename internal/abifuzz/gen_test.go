package abifuzz

import "testing"

// The generator keeps a call's arguments in nTmps locals by position: a
// host function with more parameters needs a larger nTmps (the failure of
// tensor.adam, 9 parameters, when there were 5).
func TestArgumentLocalsSuffice(t *testing.T) {
	for _, f := range funcs {
		if len(f.params) > nTmps {
			t.Errorf("%s.%s takes %d parameters, the generator has %d argument locals (nTmps)", f.module, f.name, len(f.params), nTmps)
		}
	}
}
