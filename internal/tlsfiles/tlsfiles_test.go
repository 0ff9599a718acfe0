package tlsfiles_test

import (
	"crypto/tls"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fennec-edge/fennec/internal/tlsfiles"
	"github.com/fennec-edge/fennec/internal/tlsfiles/tlstest"
)

// handshake runs one TLS handshake between a listener with srv and a
// client with cli over TCP on loopback, and returns the client's error and
// the server's certificate serial as the client saw it.
func handshake(t *testing.T, srv, cli *tls.Config) (string, error) {
	t.Helper()
	l, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if c.(*tls.Conn).Handshake() == nil {
			_, _ = c.Write([]byte("k")) // the client reads it: accepted
			_, _ = c.Read(make([]byte, 1))
		}
		c.Close()
	}()
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", l.Addr().String(), cli)
	if err == nil {
		// TLS 1.3 reports a refused client certificate at the first
		// read; an accepted client reads the server's byte.
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c.Read(make([]byte, 1))
	}
	serial := ""
	if c != nil {
		if st := c.ConnectionState(); len(st.PeerCertificates) > 0 {
			serial = st.PeerCertificates[0].SerialNumber.String()
		}
		c.Close()
	}
	<-done
	return serial, err
}

func TestHandshakes(t *testing.T) {
	ca := tlstest.NewCA(t, "fennec-test")
	other := tlstest.NewCA(t, "stranger")
	srvCert, srvKey := ca.Issue(t, "hub")
	cliCert, cliKey := ca.Issue(t, "device")
	strCert, strKey := other.Issue(t, "stranger")
	load := func(c tlsfiles.Config) *tlsfiles.Files {
		t.Helper()
		f, err := tlsfiles.Load(c)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	server := func(c tlsfiles.Config) *tls.Config {
		t.Helper()
		s, err := load(c).Server()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	plainSrv := server(tlsfiles.Config{Cert: srvCert, Key: srvKey})
	mtlsSrv := server(tlsfiles.Config{Cert: srvCert, Key: srvKey, ClientCA: ca.File})
	for _, tc := range []struct {
		name string
		srv  *tls.Config
		cli  tlsfiles.Config
		want string // "" = ok, else a part of the error
	}{
		{"server verified by the CA", plainSrv, tlsfiles.Config{CA: ca.File}, ""},
		{"server from another CA refused", plainSrv, tlsfiles.Config{CA: other.File}, "unknown authority"},
		{"mutual TLS with the device's certificate", mtlsSrv, tlsfiles.Config{CA: ca.File, Cert: cliCert, Key: cliKey}, ""},
		{"mutual TLS refuses a client without a certificate", mtlsSrv, tlsfiles.Config{CA: ca.File}, "certificate"},
		{"mutual TLS refuses a certificate of another CA", mtlsSrv, tlsfiles.Config{CA: ca.File, Cert: strCert, Key: strKey}, "certificate"},
		{"wrong server name refused", plainSrv, tlsfiles.Config{CA: ca.File, ServerName: "hub.example"}, "hub.example"},
	} {
		_, err := handshake(t, tc.srv, load(tc.cli).Client())
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want an error with %q", tc.name, err, tc.want)
		}
	}
}

// A renewed certificate is served from the next handshake on, without a
// restart; a half-written renewal keeps the last good one.
func TestReloadOnChange(t *testing.T) {
	ca := tlstest.NewCA(t, "fennec-test")
	cert, key := ca.Issue(t, "hub")
	f, err := tlsfiles.Load(tlsfiles.Config{Cert: cert, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := f.Server()
	cli, _ := tlsfiles.Load(tlsfiles.Config{CA: ca.File})
	first, err := handshake(t, srv, cli.Client())
	if err != nil || first != tlstest.Serial(t, cert).String() {
		t.Fatalf("first handshake: serial %s, %v", first, err)
	}
	ca.Issue(t, "hub") // renewal: new key and certificate in the same files
	second, err := handshake(t, srv, cli.Client())
	if err != nil {
		t.Fatal(err)
	}
	if second == first || second != tlstest.Serial(t, cert).String() || f.Reloads() != 1 {
		t.Fatalf("after renewal: serial %s (before %s), %d reloads", second, first, f.Reloads())
	}
	if err := os.WriteFile(cert, []byte("-----BEGIN CERT"), 0o600); err != nil { // a torn write
		t.Fatal(err)
	}
	third, err := handshake(t, srv, cli.Client())
	if err != nil || third != second {
		t.Fatalf("after a torn renewal: serial %s, %v; want the last good %s", third, err, second)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/bad.pem"
	_ = os.WriteFile(bad, []byte("not pem"), 0o600)
	for _, tc := range []struct {
		cfg  tlsfiles.Config
		want string
	}{
		{tlsfiles.Config{Cert: "x.pem"}, "go together"},
		{tlsfiles.Config{Cert: dir + "/none.pem", Key: dir + "/none-key.pem"}, "none.pem"},
		{tlsfiles.Config{Cert: bad, Key: bad}, "bad.pem"},
		{tlsfiles.Config{CA: bad}, "bad.pem: no PEM certificate"},
	} {
		if _, err := tlsfiles.Load(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	f, _ := tlsfiles.Load(tlsfiles.Config{})
	if _, err := f.Server(); err == nil {
		t.Error("a listener without a certificate")
	}
}
