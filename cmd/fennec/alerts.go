package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/fennec-edge/fennec/serve"
)

func init() { register(newAlertsCmd) }

// alertJSON renders a published result as JSON: JSON payloads as they are,
// CBOR ones converted (serve's rules), anything else as an error line.
func alertJSON(data []byte) json.RawMessage {
	if json.Valid(data) {
		return data
	}
	if b, err := serve.EncodeResponse(serve.FormatJSON, data); err == nil {
		return b
	}
	b, _ := json.Marshal(map[string]string{"error": "payload is neither JSON nor CBOR", "bytes": fmt.Sprint(len(data))})
	return b
}

func newAlertsCmd() *cobra.Command {
	var (
		url, subject string
		follow, js   bool
	)
	c := &cobra.Command{
		Use:   "alerts --follow --nats URL",
		Short: "Follow the alerts a device publishes (a nurse-station client)",
		Long: `Alerts subscribes to a device's (or the hub's) nats-server and prints each
message on --subject as one line: the subject and the payload as JSON, or with
--json one JSON object {"subject": ..., "data": ...} per line. It runs until
interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if !follow {
				return &exitError{exitUsage, errors.New("alerts needs --follow (it has no store to list)")}
			}
			nc, err := nats.Connect(url, nats.Name("fennec alerts"))
			if err != nil {
				return fmt.Errorf("connect to %s: %v", url, err)
			}
			defer nc.Close()
			ch := make(chan *nats.Msg, 1024)
			sub, err := nc.ChanSubscribe(subject, ch)
			if err != nil {
				return &exitError{exitUsage, fmt.Errorf("--subject %q: %v", subject, err)}
			}
			defer sub.Unsubscribe()
			if err := nc.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(c.ErrOrStderr(), "following %s on %s\n", subject, url)
			ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			w := c.OutOrStdout()
			for {
				select {
				case <-ctx.Done():
					return nil
				case m := <-ch:
					if js {
						b, _ := json.Marshal(struct {
							Subject string          `json:"subject"`
							Data    json.RawMessage `json:"data"`
						}{m.Subject, alertJSON(m.Data)})
						fmt.Fprintf(w, "%s\n", b)
					} else {
						fmt.Fprintf(w, "%s %s\n", m.Subject, alertJSON(m.Data))
					}
				}
			}
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "print alerts as they arrive until interrupted")
	c.Flags().StringVar(&url, "nats", nats.DefaultURL, "nats-server to subscribe to")
	c.Flags().StringVar(&subject, "subject", "alerts.>", "subject (wildcards allowed)")
	c.Flags().BoolVar(&js, "json", false, "one JSON object per line")
	return c
}
