package serve_test

import (
	"fmt"

	"github.com/fennec-edge/fennec/serve"
)

func ExampleParseDeviceConfig() {
	dc, err := serve.ParseDeviceConfig([]byte(`
device = "ward3"

[[binding]]
name = "score-vitals"
module = "risk-infer"
entry = "predict"
source = "mqtt"
topic = "vitals/bed/+"
publish = "alerts.{device}"
concurrency = 2
`), "device.toml")
	if err != nil {
		fmt.Println(err)
		return
	}
	b := dc.Bindings[0]
	fmt.Println(b.Name, "subscribes to", b.NATSSubject(), "queue", b.Queue)

	_, err = serve.ParseDeviceConfig([]byte("[[binding]]\nmodule = \"risk-infer\"\nentry = \"predict\"\nsource = \"mqtt\"\ntopic = \"vitals/bed.3\"\n"), "device.toml")
	fmt.Println(err)
	// Output:
	// score-vitals subscribes to vitals.bed.* queue 8
	// device.toml:5: field "binding[0].topic": "vitals/bed.3": '.' in a level maps to "//" in NATS; use '/' between levels
}
