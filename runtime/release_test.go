package runtime

import (
	"context"
	"reflect"
	"testing"

	"github.com/fennec-edge/fennec/internal/wasmtest"
	"github.com/tetratelabs/wazero"
)

// TestReleaseBodies pins releaseBodies to the wazero in go.mod: it must find
// the bodies, drop them, and leave a module that still instantiates and
// runs, twice.
func TestReleaseBodies(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	i32 := []byte{wasmtest.I32}
	wasm := wasmtest.Module{MemoryPages: 1, Funcs: []wasmtest.Func{
		{Sig: wasmtest.Sig{Params: i32, Results: i32}, Body: wasmtest.LocalGet(0), Export: "id"},
	}}.Encode()
	cm, err := r.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	if !releaseBodies(cm) {
		t.Fatal("releaseBodies does not know this wazero's compiled module: check wazero.compiledModule.module and wasm.Code.Body")
	}
	cs := reflect.ValueOf(cm).Elem().FieldByName("module").Elem().FieldByName("CodeSection")
	if cs.Len() != 1 || cs.Index(0).FieldByName("Body").Len() != 0 {
		t.Fatalf("bodies not released: %d functions, body of %d bytes", cs.Len(), cs.Index(0).FieldByName("Body").Len())
	}
	for i := range 2 {
		mod, err := r.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName(""))
		if err != nil {
			t.Fatal(err)
		}
		res, err := mod.ExportedFunction("id").Call(ctx, uint64(40+i))
		if err != nil || res[0] != uint64(40+i) {
			t.Fatalf("id(%d) = %v, %v", 40+i, res, err)
		}
		mod.Close(ctx)
	}
	if releaseBodies(nil) {
		t.Fatal("releaseBodies(nil) = true")
	}
}
