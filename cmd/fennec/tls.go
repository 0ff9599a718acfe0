package main

import (
	"crypto/tls"
	"net"
	"net/url"

	"github.com/spf13/cobra"

	"github.com/fennec-edge/fennec/internal/tlsfiles"
)

// tlsFlags are the TLS files of a listener (--tls-cert, --tls-key,
// --tls-client-ca) or of a connection (--tls-ca, --tls-cert, --tls-key),
// and --allow-plaintext. The files are read again when they change.
type tlsFlags struct {
	cfg            tlsfiles.Config
	allowPlaintext bool
}

func (f *tlsFlags) addServer(c *cobra.Command) {
	c.Flags().StringVar(&f.cfg.Cert, "tls-cert", "", "TLS certificate (PEM) of the listeners; reloaded when the file changes")
	c.Flags().StringVar(&f.cfg.Key, "tls-key", "", "TLS private key (PEM) of --tls-cert")
	c.Flags().StringVar(&f.cfg.ClientCA, "tls-client-ca", "", "require client certificates signed by this CA (PEM): mutual TLS")
	c.Flags().BoolVar(&f.allowPlaintext, "allow-plaintext", false, "with --access, listen on a network address without TLS (traffic in the clear)")
}

func (f *tlsFlags) addClient(c *cobra.Command, plaintextFlag bool) {
	c.Flags().StringVar(&f.cfg.CA, "tls-ca", "", "verify the server's TLS certificate with this CA (PEM); turns TLS on")
	c.Flags().StringVar(&f.cfg.Cert, "tls-cert", "", "TLS client certificate (PEM) for a server that requires one (mutual TLS)")
	c.Flags().StringVar(&f.cfg.Key, "tls-key", "", "TLS private key (PEM) of --tls-cert")
	if plaintextFlag {
		c.Flags().BoolVar(&f.allowPlaintext, "allow-plaintext", false, "with --nkey, connect to a hub that is not on this machine without TLS (traffic in the clear)")
	}
}

// server is the listeners' configuration, nil without --tls-cert.
func (f *tlsFlags) server() (*tls.Config, error) {
	if f.cfg.Cert == "" && f.cfg.Key == "" && f.cfg.ClientCA == "" {
		return nil, nil
	}
	files, err := tlsfiles.Load(f.cfg)
	if err != nil {
		return nil, badInput(err)
	}
	c, err := files.Server()
	if err != nil {
		return nil, badInput(err)
	}
	return c, nil
}

// client is a connection's configuration, nil without --tls-ca or
// --tls-cert (then the connection is plaintext).
func (f *tlsFlags) client() (*tls.Config, error) {
	if f.cfg.CA == "" && f.cfg.Cert == "" && f.cfg.Key == "" {
		return nil, nil
	}
	files, err := tlsfiles.Load(f.cfg)
	if err != nil {
		return nil, badInput(err)
	}
	return files.Client(), nil
}

// remoteURL reports whether a URL's host is not this machine.
func remoteURL(u string) bool {
	pu, err := url.Parse(u)
	if err != nil {
		return true
	}
	host := pu.Hostname()
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}
