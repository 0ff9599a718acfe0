package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/fennec-edge/fennec/federation"
	"github.com/fennec-edge/fennec/runtime"
)

// hubWasmFlags are fennec hub's Wasm modules: a held-out evaluator
// (--eval-data with --eval-module) and a strategy (--strategy-module).
type hubWasmFlags struct {
	evalData, evalModule, evalManifest string
	stratModule, stratManifest         string
}

// check refuses inconsistent combinations (usage errors).
// Whether a privacy mode may feed the module strategy is the hub's rule
// (its Config validation), not this one's.
func (w *hubWasmFlags) check(c *cobra.Command) error {
	switch {
	case w.evalData != "" && w.evalModule == "":
		return &exitError{exitUsage, errors.New("--eval-data needs --eval-module (a module with an \"evaluate\" entrypoint, e.g. risk-train.wasm)")}
	case w.evalModule != "" && w.evalData == "":
		return &exitError{exitUsage, errors.New("--eval-module needs --eval-data (a held-out CSV: numeric columns, last the label)")}
	case w.evalManifest != "" && w.evalModule == "":
		return &exitError{exitUsage, errors.New("--eval-manifest needs --eval-module")}
	case w.stratManifest != "" && w.stratModule == "":
		return &exitError{exitUsage, errors.New("--strategy-manifest needs --strategy-module")}
	case w.stratModule != "" && c.Flags().Changed("strategy"):
		return &exitError{exitUsage, errors.New("--strategy and --strategy-module are exclusive: the module is the strategy")}
	}
	return nil
}

// load compiles the modules in one runtime engine and sets cfg.Strategy
// and cfg.Evaluator; the returned function closes the engine.
func (w *hubWasmFlags) load(ctx context.Context, cfg *federation.HubConfig, log *slog.Logger) (func(), error) {
	if ctx == nil {
		ctx = context.Background()
	}
	// Read the inputs first, so that bad input fails before an engine starts.
	var ds federation.Dataset
	if w.evalData != "" {
		data, err := federation.LoadCSV(w.evalData, 0, 1)
		if err != nil {
			return nil, &exitError{exitBadInput, fmt.Errorf("--eval-data: %w", err)}
		}
		ds = data.TrainDataset(true) // f32 labels, as the agent sends them by default
	}
	type modFile struct {
		wasm []byte
		man  runtime.Manifest
	}
	read := func(flag, path, manPath, entry string) (modFile, error) {
		wasm, err := os.ReadFile(path)
		if err != nil {
			return modFile{}, &exitError{exitBadInput, fmt.Errorf("%s: %w", flag, err)}
		}
		if manPath == "" {
			if manPath, err = runtime.FindManifest(path); err != nil {
				return modFile{}, &exitError{exitBadInput, fmt.Errorf("%s: %w", flag, err)}
			}
		}
		man, err := runtime.ReadManifest(manPath)
		if err != nil {
			return modFile{}, &exitError{exitBadInput, fmt.Errorf("%s %s: %w", flag, path, err)}
		}
		if !slices.Contains(man.Entrypoints, entry) {
			return modFile{}, &exitError{exitBadInput, fmt.Errorf("%s %s: its manifest %s declares no %q entrypoint (it declares %v)", flag, path, manPath, entry, man.Entrypoints)}
		}
		return modFile{wasm, man}, nil
	}
	var evalMod, stratMod modFile
	var err error
	if w.evalModule != "" {
		if evalMod, err = read("--eval-module", w.evalModule, w.evalManifest, "evaluate"); err != nil {
			return nil, err
		}
	}
	if w.stratModule != "" {
		if stratMod, err = read("--strategy-module", w.stratModule, w.stratManifest, "aggregate"); err != nil {
			return nil, err
		}
	}
	eng, err := newEngine(ctx, log, runtime.Config{Logger: log})
	if err != nil {
		return nil, &exitError{exitFailure, err}
	}
	closeEngine := func() { eng.Close(context.Background()) }
	if w.stratModule != "" {
		mod, err := eng.Compile(ctx, stratMod.wasm, stratMod.man)
		if err != nil {
			closeEngine()
			return nil, &exitError{exitBadInput, fmt.Errorf("--strategy-module %s: %w", w.stratModule, err)}
		}
		cfg.Strategy = federation.WasmStrategy(stratMod.man.Name, mod)
	}
	if w.evalModule != "" {
		mod, err := eng.Compile(ctx, evalMod.wasm, evalMod.man)
		if err != nil {
			closeEngine()
			return nil, &exitError{exitBadInput, fmt.Errorf("--eval-module %s: %w", w.evalModule, err)}
		}
		// The hub evaluates every round: its one instance stays warm
		// rather than being instantiated again each round.
		ev := federation.DatasetEvaluator(&federation.WasmTrainer{Mod: mod, KeepWarm: true}, ds, w.evalData)
		// The initial model must be one the module evaluates on this data
		// (features, layout): say so now rather than warn every round.
		if cfg.Initial != nil {
			if _, _, err := ev.Evaluate(ctx, *cfg.Initial); err != nil {
				closeEngine()
				return nil, &exitError{exitBadInput, fmt.Errorf("--eval-module %s cannot evaluate the initial model on --eval-data: %w", w.evalModule, err)}
			}
		}
		cfg.Evaluator = ev
	}
	return closeEngine, nil
}
