package dashboard_test

import (
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fennec-edge/fennec/dashboard"
)

// quietHub is a hub with no devices and no rollouts.
type quietHub struct{}

func (quietHub) Seen() map[string]time.Time { return nil }
func (quietHub) Conn() *nats.Conn           { return nil }

// A dashboard on loopback without an access file: read-only, no sign-in.
func Example() {
	d, err := dashboard.New(dashboard.Config{Addr: "127.0.0.1:0", Hub: quietHub{}, Training: dashboard.Training{Name: "wards", Strategy: "fedavg"}})
	if err != nil {
		panic(err)
	}
	if err := d.Start(); err != nil {
		panic(err)
	}
	defer d.Shutdown()
	res, err := http.Get(d.URL() + "api/v1/session")
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	fmt.Print(res.Header.Get("Content-Type"), "\n", string(b))
	// Output:
	// application/json; charset=utf-8
	// {"role":"read","can_deploy":false,"sign_in":false}
}
