package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fennec-edge/fennec/hostfuncs"
	"github.com/fennec-edge/fennec/internal/config"
	"github.com/fennec-edge/fennec/internal/routines"
	"github.com/fennec-edge/fennec/runtime"
	"github.com/nats-io/nats.go"
)

// ErrBadTrustFile is matched (errors.Is) by OpenDevice's error when the
// trust file cannot be read or parsed; the error names the file and line.
var ErrBadTrustFile = errors.New("bad trust file")

// DeviceConfig configures a device's side of rollouts: where its state
// lives and which group it belongs to.
type DeviceConfig struct {
	// Engine runs the deployed module (required).
	Engine *runtime.Engine
	// Models is the model set of Engine's Services.NN, where the models
	// bundles carry are registered (DeployerConfig.Models); nil refuses
	// bundles with models.
	Models *hostfuncs.ModelSet
	// ID and Group are the device's id and group, as in the access file
	// (required).
	ID, Group string
	// Dir is the device's rollout state directory: the bundle store in
	// Dir/store and the audit log Dir/audit.log (required; created 0700).
	Dir string
	// TrustFile is the trust file of publisher and operator keys the
	// device accepts (required).
	TrustFile string
	// Heartbeat is the status report interval; zero means 5s.
	Heartbeat time.Duration
	// Domain is the hub's JetStream domain when Run's connection is to
	// the device's own leaf server (AgentConfig.Domain).
	Domain string
	// Logger receives deployment events; nil means slog.Default().
	Logger *slog.Logger
}

// Device is a device's Deployer (the module it runs, its store and audit
// log) and, while Run runs, its rollout agent, which applies the group's
// desired state and reports status. Open it with OpenDevice.
type Device struct {
	cfg    DeviceConfig
	audit  *AuditLog
	d      *Deployer
	notify chan Event
}

// OpenDevice opens the device's store and audit log in cfg.Dir and starts
// its Deployer from the newest runnable stored version; without one it
// logs why and waits for a deployment (Run).
func OpenDevice(ctx context.Context, cfg DeviceConfig) (*Device, error) {
	switch {
	case cfg.Engine == nil:
		return nil, errors.New("deploy: DeviceConfig.Engine is required")
	case cfg.ID == "":
		return nil, errors.New("deploy: DeviceConfig.ID is required")
	case cfg.Group == "":
		return nil, errors.New("deploy: DeviceConfig.Group is required")
	case cfg.Dir == "":
		return nil, errors.New("deploy: DeviceConfig.Dir is required")
	case cfg.TrustFile == "":
		return nil, errors.New("deploy: DeviceConfig.TrustFile is required")
	}
	if err := config.Default("deploy: DeviceConfig.Heartbeat", &cfg.Heartbeat, 5*time.Second); err != nil {
		return nil, err
	}
	cfg.Logger = config.Logger(cfg.Logger)
	tr, err := LoadTrust(cfg.TrustFile)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadTrustFile, err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	store, err := OpenStore(filepath.Join(cfg.Dir, "store"))
	if err != nil {
		return nil, err
	}
	audit, err := OpenAudit(filepath.Join(cfg.Dir, "audit.log"))
	if err != nil {
		return nil, err
	}
	dev := &Device{cfg: cfg, audit: audit, notify: make(chan Event, 16)}
	log := cfg.Logger
	dev.d, err = NewDeployer(DeployerConfig{Engine: cfg.Engine, Models: cfg.Models, Store: store, Trust: tr, Audit: audit, Device: cfg.ID, Logger: log,
		OnEvent: func(e Event) {
			log.Info("deploy "+e.Kind, "module", e.Version.Name, "version", e.Version.Version, "reason", e.Reason)
			select {
			case dev.notify <- e: // to the rollout agent's next status report
			default:
			}
		}})
	if err != nil {
		audit.Close()
		return nil, err
	}
	if err := dev.d.Start(ctx); err != nil {
		log.Error("no stored version can run; waiting for a deployment", "err", err)
	}
	return dev, nil
}

// Deployer is the device's Deployer: its running module.
func (dev *Device) Deployer() *Deployer { return dev.d }

// Run applies the group's desired state and reports status over nc (the
// device's connection) until ctx ends; it returns nil then.
func (dev *Device) Run(ctx context.Context, nc *nats.Conn) error {
	agent, err := NewAgent(AgentConfig{Conn: nc, Device: dev.cfg.ID, Group: dev.cfg.Group, Deployer: dev.d,
		Heartbeat: dev.cfg.Heartbeat, Domain: dev.cfg.Domain, Logger: dev.cfg.Logger})
	if err != nil {
		return fmt.Errorf("deploy: device %s: %w", dev.cfg.ID, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	var g routines.Group
	defer g.CloseAndWait()
	defer cancel()
	g.Go(func() {
		for {
			select {
			case e := <-dev.notify:
				agent.Notify(e)
			case <-ctx.Done():
				return
			}
		}
	})
	if err := agent.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Close stops the Deployer (its module finishes its calls) and closes the
// audit log.
func (dev *Device) Close() {
	dev.d.Close(context.Background())
	dev.audit.Close()
}
