package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fennec-edge/fennec/internal/leaf"
	"github.com/fennec-edge/fennec/internal/natsembed"
	"github.com/fennec-edge/fennec/internal/testutil"
)

// A device's uplink (the hub's uplink stream sourcing its outbox) shows in
// its detail: what arrived, what waits, when the hub last heard from it.
// The outbox lives on the hub's server here; across a leaf node it is the
// same JetStream source (internal/leaf's outage tests).
func TestDeviceUplink(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := natsembed.Start(ctx, natsembed.Config{Name: "hub", Dir: t.TempDir(), Listen: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: leaf.OutboxStream("cam-1"), Subjects: []string{"alerts.cam-1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: leaf.UplinkStream,
		Sources: []*jetstream.StreamSource{{Name: leaf.OutboxStream("cam-1")}}}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := js.Publish(ctx, "alerts.cam-1", fmt.Appendf(nil, "alert %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	d, err := New(Config{Addr: "127.0.0.1:0", Hub: &fakeHub{nc: nc}, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown()
	r := &rig{t: t, url: strings.TrimSuffix(d.URL(), "/"), d: d}
	var dd DeviceDetail
	testutil.CheckFor(t, 10*time.Second, 10*time.Millisecond, func() error {
		res := r.do("GET", "/api/v1/devices/cam-1", "", "")
		if res.code != 200 {
			return fmt.Errorf("%d %s", res.code, res.body)
		}
		dd = DeviceDetail{}
		if err := json.Unmarshal([]byte(res.body), &dd); err != nil {
			return err
		}
		if !dd.Uplink || dd.UplinkDelivered != 3 || dd.UplinkLag != 0 || dd.UplinkContact.IsZero() || dd.UplinkError != "" {
			return fmt.Errorf("cam-1 %+v", dd.DeviceView)
		}
		return nil
	})
	if age := time.Since(dd.UplinkContact); age < -time.Second || age > time.Minute {
		t.Errorf("uplink contact %v ago", age)
	}
}
