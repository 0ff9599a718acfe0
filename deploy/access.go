package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/fennec-edge/fennec/internal/atomicfile"
	"github.com/fennec-edge/fennec/internal/config"
)

// JetStream buckets used by rollout. Bucket names follow the federation
// package's "fennec_<name>_<kind>" convention with the name "deploy".
const (
	BucketDesired = "fennec_deploy_desired" // KV: key GROUP -> Desired (JSON)
	BucketStatus  = "fennec_deploy_status"  // KV: key GROUP.DEVICE -> DeviceStatus (JSON)
	BucketBundles = "fennec_deploy_bundles" // object store: name DIGEST -> bundle bytes
)

// InboxPrefix is the reply-subject prefix of a device's connection. Each
// device gets its own, so that its permission to receive replies does not
// let it read another device's replies (the default "_INBOX.>" would).
func InboxPrefix(device string) string { return "_INBOX_" + device }

// DevicePermissions are the NATS permissions of a device in group: it may
// publish only its own status, read only its group's desired state, fetch
// bundles by name, and receive replies on its own inbox. Everything else,
// including other devices' status and any write to the desired state or
// the bundle store, is denied by the server.
func DevicePermissions(group, device string) *server.Permissions {
	dk := "KV_" + BucketDesired
	ob := "OBJ_" + BucketBundles
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			"$KV." + BucketStatus + "." + group + "." + device,
			"$JS.API.STREAM.INFO.KV_" + BucketStatus,
			"$JS.API.STREAM.INFO." + dk,
			"$JS.API.STREAM.INFO." + ob,
			"$JS.API.DIRECT.GET." + dk + ".$KV." + BucketDesired + "." + group,
			"$JS.API.CONSUMER.CREATE." + dk + ".*.$KV." + BucketDesired + "." + group,
			"$JS.API.DIRECT.GET." + ob + ".$O." + BucketBundles + ".M.*",
			"$JS.API.CONSUMER.CREATE." + ob + ".*.$O." + BucketBundles + ".C.*",
			// Ordered consumers are deleted when a watch or fetch ends.
			// Consumer names are random and devices cannot list them, so
			// this does not let a device find and delete another's.
			"$JS.API.CONSUMER.DELETE." + dk + ".*",
			"$JS.API.CONSUMER.DELETE." + ob + ".*",
			"$JS.FC.>", // flow-control replies of ordered consumers
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{InboxPrefix(device) + ".>"}},
	}
}

// OperatorPermissions let an operator use the deploy buckets: publish
// bundles and desired states and read every device's status. The
// JetStream API requests they may send name one of the deploy streams, so
// an operator cannot read or delete other streams on a shared server (a
// hub's round state and models) nor create streams; the buckets are
// created by the server's own administrator (StartServer, or a hub with an
// Access). Operators get no rights on other subjects, and receive replies
// on "_INBOX.>" (devices and a hub use their own prefixes).
func OperatorPermissions() *server.Permissions {
	allow := []string{"$KV." + BucketDesired + ".>", "$O." + BucketBundles + ".>", "$JS.FC.>"}
	for _, s := range []string{"KV_" + BucketDesired, "KV_" + BucketStatus, "OBJ_" + BucketBundles} {
		allow = append(allow,
			"$JS.API.STREAM.INFO."+s,
			"$JS.API.STREAM.MSG.GET."+s,
			"$JS.API.DIRECT.GET."+s,
			"$JS.API.DIRECT.GET."+s+".>",
			"$JS.API.CONSUMER.CREATE."+s,
			"$JS.API.CONSUMER.CREATE."+s+".>",
			"$JS.API.CONSUMER.INFO."+s+".*",
			"$JS.API.CONSUMER.DELETE."+s+".*",
		)
	}
	// Replacing a bundle object purges its old chunks.
	allow = append(allow, "$JS.API.STREAM.PURGE.OBJ_"+BucketBundles)
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: allow},
		Subscribe: &server.SubjectPermission{Allow: []string{"_INBOX.>"}},
	}
}

// OperatorReadPermissions are OperatorPermissions without the writes:
// an operator of role "read" may read the desired states, the devices'
// status and the bundles, and may publish no bundle and no desired state.
func OperatorReadPermissions() *server.Permissions {
	p := OperatorPermissions()
	allow := p.Publish.Allow[:0:0]
	for _, s := range p.Publish.Allow {
		switch s {
		case "$KV." + BucketDesired + ".>", "$O." + BucketBundles + ".>", "$JS.API.STREAM.PURGE.OBJ_" + BucketBundles:
			continue
		}
		allow = append(allow, s)
	}
	p.Publish.Allow = allow
	return p
}

// MergePermissions returns the union of the allowed subjects of ps (nil
// entries are skipped); deny lists are kept too, and response permissions
// (replies to received requests) with the largest count and expiry. A device served by a hub
// gets DevicePermissions merged with the hub's own (its federation
// subjects).
func MergePermissions(ps ...*server.Permissions) *server.Permissions {
	out := &server.Permissions{Publish: &server.SubjectPermission{}, Subscribe: &server.SubjectPermission{}}
	add := func(dst *server.SubjectPermission, src *server.SubjectPermission) {
		if src == nil {
			return
		}
		for _, s := range src.Allow {
			if !slices.Contains(dst.Allow, s) {
				dst.Allow = append(dst.Allow, s)
			}
		}
		for _, s := range src.Deny {
			if !slices.Contains(dst.Deny, s) {
				dst.Deny = append(dst.Deny, s)
			}
		}
	}
	for _, p := range ps {
		if p != nil {
			add(out.Publish, p.Publish)
			add(out.Subscribe, p.Subscribe)
			if r := p.Response; r != nil {
				// Replies to received requests: the most generous of the
				// merged permissions (each one's limits, not their sum).
				if out.Response == nil {
					out.Response = &server.ResponsePermission{}
				}
				out.Response.MaxMsgs = max(out.Response.MaxMsgs, r.MaxMsgs)
				out.Response.Expires = max(out.Response.Expires, r.Expires)
			}
		}
	}
	return out
}

// Access lists who may connect: devices (with their group) and operators,
// each with the public nkey it authenticates with. It is read from TOML:
//
//	[[device]]
//	id = "cam-1"
//	group = "cameras"
//	nkey = "UABC..."
//
//	[[operator]]
//	name = "alice"
//	nkey = "UDEF..."
//	role = "deploy"   # or "read"; "deploy" when absent
type Access struct {
	Devices   []DeviceAccess   `toml:"device"`
	Operators []OperatorAccess `toml:"operator"`
}

// DeviceAccess is one device's entry.
type DeviceAccess struct {
	ID    string `toml:"id"`
	Group string `toml:"group"`
	Nkey  string `toml:"nkey"`
}

// OperatorAccess is one operator's entry. Role is RoleDeploy (the
// default when empty: the operator may deploy) or RoleRead (the operator
// may only read the fleet's state, on the NATS server and on the
// dashboard).
type OperatorAccess struct {
	Name string `toml:"name"`
	Nkey string `toml:"nkey"`
	Role string `toml:"role"`
}

// Operator roles of an access file.
const (
	RoleDeploy = "deploy"
	RoleRead   = "read"
)

// CanDeploy reports whether the operator's role allows deploys.
func (o OperatorAccess) CanDeploy() bool { return o.Role == "" || o.Role == RoleDeploy }

// Operator returns the entry of operator name.
func (a *Access) Operator(name string) (OperatorAccess, bool) {
	for _, o := range a.Operators {
		if o.Name == name {
			return o, true
		}
	}
	return OperatorAccess{}, false
}

// LoadAccess reads an access file; errors name the file, line and field.
func LoadAccess(path string) (*Access, error) {
	data, _, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	return ParseAccess(data, path)
}

// ParseAccess parses an access file's text; source names it in errors.
func ParseAccess(data []byte, source string) (*Access, error) {
	var a Access
	md, err := config.DecodeTOML(data, source, &a)
	if err != nil {
		return nil, err
	}
	if u := md.Undecoded(); len(u) > 0 {
		k := u[0]
		table, field := "", k.String()
		if len(k) == 2 {
			table, field = k[0], k[1]
		}
		return nil, fmt.Errorf("%s:%d: unknown field %q", source, locate(data, table, -1, field), k.String())
	}
	seen := map[string]string{}
	check := func(table string, i int, field, val string, ok bool, want string) error {
		if ok {
			return nil
		}
		return fmt.Errorf("%s:%d: %s[%d].%s: %q: %s", source, locate(data, table, i, field), table, i, field, val, want)
	}
	nameWant := "want 1-64 characters of A-Z a-z 0-9 _ -"
	for i, d := range a.Devices {
		if err := check("device", i, "id", d.ID, validName(d.ID), nameWant); err != nil {
			return nil, err
		}
		if err := check("device", i, "group", d.Group, validName(d.Group), nameWant); err != nil {
			return nil, err
		}
		if err := check("device", i, "nkey", d.Nkey, nkeys.IsValidPublicUserKey(d.Nkey), "want a user nkey (U...); create one with `fennec deploy nkey`"); err != nil {
			return nil, err
		}
		if prev, dup := seen[d.Nkey]; dup {
			return nil, fmt.Errorf("%s:%d: device[%d].nkey: already used by %s", source, locate(data, "device", i, "nkey"), i, prev)
		}
		if prev, dup := seen["device "+d.ID]; dup {
			return nil, fmt.Errorf("%s:%d: device[%d].id: %q is listed twice (%s)", source, locate(data, "device", i, "id"), i, d.ID, prev)
		}
		seen[d.Nkey], seen["device "+d.ID] = "device "+d.ID, "again"
	}
	for i, o := range a.Operators {
		if err := check("operator", i, "name", o.Name, validName(o.Name), nameWant); err != nil {
			return nil, err
		}
		if err := check("operator", i, "nkey", o.Nkey, nkeys.IsValidPublicUserKey(o.Nkey), "want a user nkey (U...); create one with `fennec deploy nkey`"); err != nil {
			return nil, err
		}
		if err := check("operator", i, "role", o.Role, o.Role == "" || o.Role == RoleDeploy || o.Role == RoleRead, `want "deploy" or "read"`); err != nil {
			return nil, err
		}
		if prev, dup := seen[o.Nkey]; dup {
			return nil, fmt.Errorf("%s:%d: operator[%d].nkey: already used by %s", source, locate(data, "operator", i, "nkey"), i, prev)
		}
		if prev, dup := seen["operator "+o.Name]; dup {
			return nil, fmt.Errorf("%s:%d: operator[%d].name: %q is listed twice (%s)", source, locate(data, "operator", i, "name"), i, o.Name, prev)
		}
		seen[o.Nkey], seen["operator "+o.Name] = "operator "+o.Name, "again"
	}
	return &a, nil
}

// NkeyUsers returns the server-side users for a: each device with
// DevicePermissions, merged with whatever extra returns for it (a hub adds
// its federation subjects), each operator with OperatorPermissions. Add
// them to server.Options.Nkeys of an embedded server.
func (a *Access) NkeyUsers(extra ...func(DeviceAccess) *server.Permissions) []*server.NkeyUser {
	var out []*server.NkeyUser
	for _, d := range a.Devices {
		p := DevicePermissions(d.Group, d.ID)
		if len(extra) > 0 {
			ps := []*server.Permissions{p}
			for _, e := range extra {
				ps = append(ps, e(d))
			}
			p = MergePermissions(ps...)
		}
		out = append(out, &server.NkeyUser{Nkey: d.Nkey, Permissions: p})
	}
	for _, o := range a.Operators {
		p := OperatorPermissions()
		if !o.CanDeploy() {
			p = OperatorReadPermissions()
		}
		out = append(out, &server.NkeyUser{Nkey: o.Nkey, Permissions: p})
	}
	return out
}

// Device returns the entry of device id.
func (a *Access) Device(id string) (DeviceAccess, bool) {
	for _, d := range a.Devices {
		if d.ID == id {
			return d, true
		}
	}
	return DeviceAccess{}, false
}

// GenerateNkey writes a new user nkey seed to path (mode 0600) and returns
// its public key, for an access file entry.
func GenerateNkey(path string) (string, error) {
	if _, err := os.Lstat(path); err == nil {
		return "", fmt.Errorf("%s already exists; refusing to overwrite a credential", path)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", err
	}
	seed, err := kp.Seed()
	if err != nil {
		return "", err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", err
	}
	body := fmt.Sprintf("# fennec NATS credential (user nkey seed). Keep this file secret.\n# public key: %s\n%s\n", pub, seed)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	return pub, atomicfile.WriteFile(path, []byte(body), 0o600)
}

// ConnectOptions returns the NATS options to connect as the holder of the
// nkey seed file: nkey authentication and, for a device, its own inbox
// prefix (which its permissions require). device is empty for operators.
func ConnectOptions(seedFile, device string) ([]nats.Option, error) {
	fi, err := os.Stat(seedFile)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: permissions %04o are too open; a credential must be private (chmod 600)", seedFile, fi.Mode().Perm())
	}
	opt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", seedFile, err)
	}
	opts := []nats.Option{opt}
	if device != "" {
		if !validName(device) {
			return nil, fmt.Errorf("device id %q: want 1-64 characters of A-Z a-z 0-9 _ -", device)
		}
		opts = append(opts, nats.CustomInboxPrefix(InboxPrefix(device)))
	}
	return opts, nil
}

// LoadNkey reads the user nkey seed file of ConnectOptions (private:
// mode 0600) as a key pair, for a connection that signs with it itself (a
// device's leaf node).
func LoadNkey(seedFile string) (nkeys.KeyPair, error) {
	fi, err := os.Stat(seedFile)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: permissions %04o are too open; a credential must be private (chmod 600)", seedFile, fi.Mode().Perm())
	}
	data, _, err := readSmall(seedFile)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "SU") {
			kp, err := nkeys.FromSeed([]byte(line))
			if err != nil {
				return nil, fmt.Errorf("%s: %w", seedFile, err)
			}
			return kp, nil
		}
	}
	return nil, fmt.Errorf("%s: no user nkey seed", seedFile)
}

// seedPublic reads the public key of an nkey seed file.
func seedPublic(seedFile string) (string, error) {
	data, _, err := readSmall(seedFile)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "SU") {
			kp, err := nkeys.FromSeed([]byte(line))
			if err != nil {
				return "", fmt.Errorf("%s: %w", seedFile, err)
			}
			return kp.PublicKey()
		}
	}
	return "", fmt.Errorf("%s: no user nkey seed", seedFile)
}
