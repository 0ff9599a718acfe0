// Package leaf is the device's local NATS server: nats-server embedded as
// a leaf node of the hub, with its own JetStream in its own domain, so
// that the device's clients (the agent's training and rollout
// connections, the bindings, local sensors) talk to a server on the
// device and keep working while the hub is unreachable.
//
// Messages for the hub (results, alerts, anything published on the
// outbox subjects) are captured in a local stream, the outbox, bounded in
// bytes and age. The hub's uplink stream sources every device's outbox
// across the JetStream domains (StreamSource with External.APIPrefix
// "$JS.dev-ID.API"), so JetStream itself resumes delivery from the last
// sequence the hub stored when the link returns: no retry loop here.
//
// This file names the subjects and streams both sides agree on; the hub
// side (federation's hub) uses UplinkConfig and Permissions.
package leaf

import (
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// HubDomain is the JetStream domain of the hub's embedded server. A leaf
// reaches the hub's JetStream (the rollout buckets) through
// "$JS.hub.API"; its own "$JS.API" stays on the device.
const HubDomain = "hub"

// UplinkStream is the hub's stream that sources every device's outbox.
const UplinkStream = "FENNEC_UPLINK"

// Domain is device id's JetStream domain ("dev-" + id: never HubDomain).
func Domain(id string) string { return "dev-" + id }

// OutboxStream is the name of device id's outbox stream on its leaf.
func OutboxStream(id string) string { return "FENNEC_OUTBOX_" + id }

// DeliverPrefix is the subject prefix the hub's sourcing consumer on
// device id's outbox delivers to: the only subjects besides its own
// federation and rollout ones that the device's leaf may publish on the
// hub.
func DeliverPrefix(id string) string { return "fennec.leaf." + id + ".deliver" }

// apiPrefix is the JetStream API prefix of device id's domain.
func apiPrefix(id string) string { return "$JS." + Domain(id) + ".API" }

// DefaultSubjects are the outbox subjects of device id when the Config
// names none: results and alerts addressed to the hub.
func DefaultSubjects(id string) []string {
	return []string{"alerts." + id, "alerts." + id + ".>", "results." + id + ".>", "fennec.uplink." + id + ".>"}
}

// Permissions are what device id's leaf connection needs on the hub
// beyond the device's own client permissions: receive the hub's JetStream
// API requests for its own domain and the flow-control replies of its own
// outbox's consumers, and publish the sourced messages on its own deliver
// prefix and the API replies on the reply subjects of its own domain.
// Nothing here names another device. The reply subjects name the domain
// only with the hub's server option HubOptions sets (nats-server's
// js_api_reply_v2 feature flag); without it they are "$JSC.R.<random>"
// and the leaf could not answer.
func Permissions(id string) *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{DeliverPrefix(id) + ".>", "$JSC.R." + Domain(id) + ".>"}},
		Subscribe: &server.SubjectPermission{Allow: []string{
			apiPrefix(id) + ".>",
			"$JS.FC." + OutboxStream(id) + ".>",
		}},
	}
}

// HubDenied are the JetStream API requests of the device's domain that
// its leaf refuses to take from the hub (RemoteLeafOpts.DenyImports): the
// hub may read the outbox (stream info, consumers to source it) but not
// delete, purge, reconfigure or create streams on the device, nor remove
// messages from the outbox before they are delivered.
func HubDenied(id string) []string {
	pre := apiPrefix(id) + "."
	var out []string
	for _, s := range []string{"STREAM.CREATE.>", "STREAM.UPDATE.>", "STREAM.DELETE.>", "STREAM.PURGE.>",
		"STREAM.MSG.DELETE.>", "STREAM.SNAPSHOT.>", "STREAM.RESTORE.>", "STREAM.PEER.>", "STREAM.LEADER.>",
		"ACCOUNT.>", "META.>", "SERVER.>"} {
		out = append(out, pre+s)
	}
	return out
}

// HubOptions sets what a hub's embedded server needs to serve leaf
// nodes: its JetStream domain (HubDomain) and API reply subjects that
// name the domain they ask (so that Permissions can confine a leaf's
// replies to its own domain's).
func HubOptions(o *server.Options) {
	o.JetStreamDomain = HubDomain
	if o.FeatureFlags == nil {
		o.FeatureFlags = map[string]bool{}
	}
	o.FeatureFlags[server.FeatureFlagJsAPIReplyFormatV2] = true
}

// HubPermissions are the hub-domain JetStream subjects ("$JS.hub.API...")
// matching the plain ones ("$JS.API...", "$KV...", "$O...") in p's publish
// allow list: a device whose clients sit behind its leaf reaches the
// hub's buckets through the hub's domain prefix, with exactly the rights
// it has on a direct connection.
func HubPermissions(p *server.Permissions) *server.Permissions {
	out := &server.Permissions{Publish: &server.SubjectPermission{}}
	if p == nil || p.Publish == nil {
		return out
	}
	pre := "$JS." + HubDomain + ".API"
	for _, s := range p.Publish.Allow {
		switch {
		case strings.HasPrefix(s, "$JS.API."):
			out.Publish.Allow = append(out.Publish.Allow, pre+strings.TrimPrefix(s, "$JS.API"))
		case strings.HasPrefix(s, "$KV.") || strings.HasPrefix(s, "$O."):
			// The domain mapping covers $KV and $OBJ (nats.go's object
			// store publishes "$O." subjects only without a prefix).
			out.Publish.Allow = append(out.Publish.Allow, pre+"."+s)
		}
	}
	return out
}

// UplinkPrefix is the subject prefix under which the hub's uplink stores
// device id's messages: "uplink.ID.", then the subject it was published
// on (alerts.ID, results.ID.score, ...).
func UplinkPrefix(id string) string { return "uplink." + id + "." }

// SourceOf is the hub's StreamSource for device id's outbox. The hub
// prefixes every message it takes from this source with UplinkPrefix(id)
// (a subject transform applied on the hub, to whatever the leaf
// delivers): a device cannot make its messages pass for another's by their
// subject.
func SourceOf(id string) *jetstream.StreamSource {
	return &jetstream.StreamSource{Name: OutboxStream(id),
		External: &jetstream.ExternalStream{APIPrefix: apiPrefix(id), DeliverPrefix: DeliverPrefix(id)},
		// Two transforms that cover every subject without overlapping (one
		// token; two or more): with one, the hub would name its filter in
		// the consumer request's subject, where ">" cannot stand.
		SubjectTransforms: []jetstream.SubjectTransformConfig{
			{Source: "*", Destination: UplinkPrefix(id) + "{{wildcard(1)}}"},
			{Source: "*.>", Destination: UplinkPrefix(id) + "{{wildcard(1)}}.>"},
		}}
}

// UplinkConfig is the hub's uplink stream sourcing the outboxes of
// devices: file storage, at most maxBytes (oldest discarded), messages
// deduplicated by Nats-Msg-Id within two minutes.
func UplinkConfig(devices []string, maxBytes int64) (jetstream.StreamConfig, error) {
	cfg := jetstream.StreamConfig{Name: UplinkStream, Storage: jetstream.FileStorage,
		MaxBytes: maxBytes, Discard: jetstream.DiscardOld, Duplicates: DedupeWindow,
		Description: "results and alerts sourced from the devices' leaf outboxes"}
	seen := map[string]bool{}
	for _, d := range devices {
		if seen[d] {
			return cfg, fmt.Errorf("uplink: device %q listed twice", d)
		}
		seen[d] = true
		cfg.Sources = append(cfg.Sources, SourceOf(d))
	}
	return cfg, nil
}

// DedupeWindow is the Nats-Msg-Id duplicate window of the outbox and the
// uplink.
const DedupeWindow = 2 * time.Minute
