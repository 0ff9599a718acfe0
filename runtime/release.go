package runtime

import (
	"reflect"

	"github.com/tetratelabs/wazero"
)

// releaseBodies drops the function bodies that wazero keeps in a compiled
// module's decoded form once its machine code exists, and reports whether it
// could. wazero (v1.12) reads a body only to validate and compile it (and
// its interpreter, which fennec uses only to validate, in its own runtime);
// instances run the machine code, so after CompileModule the bodies (2.1 MB
// of a 3.4 MB Go guest, the largest part of what a compiled module holds in
// the Go heap) are dead weight for as long as the module stays loaded.
//
// wazero has no API for this, so it is done through reflection on the
// unexported field that holds the decoded module, checked by name and type:
// when a wazero upgrade changes them, nothing is touched and false is
// returned (TestReleaseBodies fails, so the upgrade notices). It must be
// called before the compiled module is shared or instantiated.
func releaseBodies(cm wazero.CompiledModule) bool {
	v := reflect.ValueOf(cm)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return false
	}
	f := v.Elem().FieldByName("module")
	if !f.IsValid() || f.Kind() != reflect.Pointer || f.IsNil() ||
		f.Type().Elem().PkgPath() != "github.com/tetratelabs/wazero/internal/wasm" || f.Type().Elem().Name() != "Module" {
		return false
	}
	mod := reflect.NewAt(f.Type().Elem(), f.UnsafePointer()).Elem()
	cs := mod.FieldByName("CodeSection")
	if !cs.IsValid() || cs.Kind() != reflect.Slice || cs.Type().Elem().Kind() != reflect.Struct {
		return false
	}
	body, ok := cs.Type().Elem().FieldByName("Body")
	if !ok || body.Type != reflect.TypeOf([]byte(nil)) {
		return false
	}
	goFunc, ok := cs.Type().Elem().FieldByName("GoFunc")
	if !ok || goFunc.Type.Kind() != reflect.Interface {
		return false
	}
	for i := range cs.Len() {
		c := cs.Index(i)
		if !c.Field(goFunc.Index[0]).IsNil() {
			continue // a host function: nothing compiled from a body
		}
		c.Field(body.Index[0]).Set(reflect.Zero(body.Type))
	}
	return true
}
