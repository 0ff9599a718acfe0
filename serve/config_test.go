package serve

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/internal/config"
)

func TestParseDeviceConfigErrors(t *testing.T) {
	cases := []struct {
		name, src string
		line      int
		field     string
		msg       string
	}{
		{"unknown top", "devise = \"x\"\n", 1, "devise", "unknown field"},
		{"unknown in binding", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"http\"\nconcurency = 2\n", 5, "binding.concurency", "unknown field"},
		{"bad device", "device = \"a b\"\n", 1, "device", "subject token"},
		{"http listen", "[http]\nlisten = \"8080\"\n", 2, "http.listen", "host:port"},
		{"negative body", "[http]\nmax_body_bytes = -1\n", 2, "http.max_body_bytes", "negative"},
		{"negative timeout", "[http]\nread_header_timeout = \"-1s\"\n", 2, "http.read_header_timeout", "negative"},
		{"bad duration", "[http]\nidle_timeout = \"soon\"\n", 2, "http.idle_timeout", ""},
		{"module no wasm", "[[module]]\nname = \"m\"\n", 1, "module[0].wasm", "required"},
		{"module twice", "[[module]]\nname = \"m\"\nwasm = \"a\"\n[[module]]\nname = \"m\"\nwasm = \"b\"\n", 5, "module[1].name", "twice"},
		{"no source", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\n", 1, "binding[0].source", "required"},
		{"bad source", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"amqp\"\n", 4, "binding[0].source", "amqp"},
		{"bad module", "[[binding]]\nmodule = \"M!\"\nentry = \"e\"\nsource = \"http\"\n", 2, "binding[0].module", "module name"},
		{"bad entry", "[[binding]]\nmodule = \"m\"\nentry = \"1e\"\nsource = \"http\"\n", 3, "binding[0].entry", "entrypoint"},
		{"http with subject", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"http\"\nsubject = \"a\"\n", 4, "binding[0].source", "no subject"},
		{"http twice", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"http\"\n[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"http\"\n", 7, "binding[1].entry", "already bound"},
		{"nats no subject", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"nats\"\n", 1, "binding[0].subject", "required"},
		{"nats bad wildcard", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"nats\"\nsubject = \"a.>.b\"\n", 5, "binding[0].subject", "last token"},
		{"nats empty token", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"nats\"\nsubject = \"a..b\"\n", 5, "binding[0].subject", "empty token"},
		{"nats topic", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"nats\"\ntopic = \"a/b\"\n", 5, "binding[0].topic", "subject, not a topic"},
		{"mqtt dot", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"mqtt\"\ntopic = \"a.b/c\"\n", 5, "binding[0].topic", "'.'"},
		{"mqtt empty level", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"mqtt\"\ntopic = \"/a\"\n", 5, "binding[0].topic", "empty level"},
		{"mqtt hash", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"mqtt\"\ntopic = \"a/#/b\"\n", 5, "binding[0].topic", "last level"},
		{"mqtt nats wildcard", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"mqtt\"\ntopic = \"a/*\"\n", 5, "binding[0].topic", "NATS wildcards"},
		{"publish placeholder", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"nats\"\nsubject = \"a.*\"\npublish = \"x.{bed}\"\n", 6, "binding[0].publish", "unknown placeholder"},
		{"publish past", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"nats\"\nsubject = \"a.*\"\npublish = \"x.{3}\"\n", 6, "binding[0].publish", "past"},
		{"publish wildcard", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"nats\"\nsubject = \"a.*\"\npublish = \"x.*\"\n", 6, "binding[0].publish", "no wildcards"},
		{"format", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"nats\"\nsubject = \"a\"\nformat = \"xml\"\n", 6, "binding[0].format", "xml"},
		{"concurrency", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"http\"\nconcurrency = 1000\n", 5, "binding[0].concurrency", "outside"},
		{"queue negative", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"http\"\nqueue = -1\n", 5, "binding[0].queue", "outside"},
		{"queue huge", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"http\"\nqueue = 100000\n", 5, "binding[0].queue", "outside"},
		{"second binding", "[[binding]]\nmodule = \"m\"\nentry = \"e\"\nsource = \"http\"\n\n[[binding]]\nmodule = \"m\"\nentry = \"f\"\nsource = \"nats\"\nsubject = \"a\"\nqueue_group = \"a b\"\n", 11, "binding[1].queue_group", "characters"},
		{"syntax", "[[binding]\n", 2, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseDeviceConfig([]byte(c.src), "device.toml")
			var fe *config.FileError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v (%T), want a *config.FileError", err, err)
			}
			if fe.Source != "device.toml" || fe.Line != c.line || c.field != "" && fe.Field != c.field || !strings.Contains(fe.Msg, c.msg) {
				t.Fatalf("got %q (line %d, field %q), want line %d, field %q, message with %q", err, fe.Line, fe.Field, c.line, c.field, c.msg)
			}
		})
	}
}

func TestParseDeviceConfigDefaults(t *testing.T) {
	c, err := ParseDeviceConfig([]byte(`device = "bed-7"
[[binding]]
module = "risk-infer"
entry = "predict"
source = "mqtt"
topic = "vitals/bed/+"
publish = "alerts.{device}.{3}"
`), "d.toml")
	if err != nil {
		t.Fatal(err)
	}
	b := c.Bindings[0]
	if b.NATSSubject() != "vitals.bed.*" || b.Format != FormatCBOR || b.Concurrency != DefaultConcurrency || b.Queue != DefaultQueue || b.QueueTimeout.Duration != DefaultQueueTimeout || b.Name != "risk-infer-predict-0" {
		t.Fatalf("binding defaults: %+v", b)
	}
	if c.HTTP.MaxBodyBytes != DefaultMaxBodyBytes || c.HTTP.ReadHeaderTimeout.Duration != 5*time.Second {
		t.Fatalf("http defaults: %+v", c.HTTP)
	}
	if got := expand(b.Publish, c.Device, "vitals.bed.12"); got != "alerts.bed-7.12" {
		t.Fatalf("expand = %q", got)
	}
	var zero DeviceConfig
	if err := zero.validate(nil); err != nil || zero.Device == "" {
		t.Fatalf("zero value: %v, device %q", err, zero.Device)
	}
}

func TestMQTTFilterToSubject(t *testing.T) {
	for in, want := range map[string]string{
		"vitals/bed/+": "vitals.bed.*",
		"vitals/#":     "vitals.>",
		"a":            "a",
		"#":            ">",
	} {
		if got, err := MQTTFilterToSubject(in); err != nil || got != want {
			t.Errorf("%q: got %q, %v; want %q", in, got, err, want)
		}
	}
}
