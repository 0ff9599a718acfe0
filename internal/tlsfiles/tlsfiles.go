// Package tlsfiles builds the TLS configurations of fennec's listeners and
// connections from PEM files, and reloads them when the files change: the
// certificate and key are read again at the next handshake after either
// file's modification time or size changes (tls.Config.GetCertificate /
// GetClientCertificate), and so is a listener's client CA file
// (GetConfigForClient), so that renewing a certificate needs no restart and
// drops no connection.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Config names the PEM files. The zero value is "no TLS".
type Config struct {
	// Cert and Key are this side's certificate chain and private key: a
	// listener's certificate, or a client's for mutual TLS.
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
	// CA verifies the server a client connects to (system roots when
	// empty).
	CA string `toml:"ca"`
	// ClientCA, on a listener, requires every client to present a
	// certificate signed by it (mutual TLS).
	ClientCA string `toml:"client_ca"`
	// ServerName overrides the name a client verifies (the URL's host).
	ServerName string `toml:"server_name"`
}

// Empty reports whether no file is named.
func (c Config) Empty() bool { return c == Config{} }

// MaxFile bounds each PEM file read.
const MaxFile = 1 << 20

// Files holds the loaded files and reloads them on change.
type Files struct {
	cfg Config

	mu       sync.Mutex
	cert     *tls.Certificate
	certSt   [2]stamp
	ca, cca  *x509.CertPool
	caSt     stamp
	clientSt stamp
	reloads  int
}

type stamp struct {
	mod  time.Time
	size int64
}

func stat(path string) (stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	if fi.Size() > MaxFile {
		return stamp{}, fmt.Errorf("%s: %d bytes, more than %d", path, fi.Size(), MaxFile)
	}
	return stamp{fi.ModTime(), fi.Size()}, nil
}

// Load reads the files of cfg; errors name the file. Cert and Key go
// together.
func Load(cfg Config) (*Files, error) {
	if (cfg.Cert == "") != (cfg.Key == "") {
		return nil, errors.New("tls: a certificate (--tls-cert, cert) and its key (--tls-key, key) go together")
	}
	f := &Files{cfg: cfg}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.refreshLocked(); err != nil {
		return nil, err
	}
	return f, nil
}

// refreshLocked reloads whatever changed; on an error it keeps what it had
// (a half-written renewal does not take the listener down) and reports it.
func (f *Files) refreshLocked() error {
	var errs []error
	if f.cfg.Cert != "" {
		cs, err1 := stat(f.cfg.Cert)
		ks, err2 := stat(f.cfg.Key)
		switch {
		case err1 != nil || err2 != nil:
			errs = append(errs, fmt.Errorf("tls: %w", errors.Join(err1, err2)))
		case f.cert == nil || cs != f.certSt[0] || ks != f.certSt[1]:
			c, err := tls.LoadX509KeyPair(f.cfg.Cert, f.cfg.Key)
			if err != nil {
				errs = append(errs, fmt.Errorf("tls: %s, %s: %w", f.cfg.Cert, f.cfg.Key, err))
				break
			}
			if c.Leaf == nil && len(c.Certificate) > 0 {
				c.Leaf, _ = x509.ParseCertificate(c.Certificate[0])
			}
			if f.cert != nil {
				f.reloads++
			}
			f.cert, f.certSt = &c, [2]stamp{cs, ks}
		}
	}
	pool := func(path string, st *stamp, dst **x509.CertPool) {
		if path == "" {
			return
		}
		s, err := stat(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("tls: %w", err))
			return
		}
		if *dst != nil && s == *st {
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("tls: %w", err))
			return
		}
		p := x509.NewCertPool()
		if !p.AppendCertsFromPEM(b) {
			errs = append(errs, fmt.Errorf("tls: %s: no PEM certificate", path))
			return
		}
		*dst, *st = p, s
	}
	pool(f.cfg.CA, &f.caSt, &f.ca)
	pool(f.cfg.ClientCA, &f.clientSt, &f.cca)
	return errors.Join(errs...)
}

func (f *Files) current() (*tls.Certificate, *x509.CertPool, *x509.CertPool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_ = f.refreshLocked() // a failed reload keeps the last good files
	return f.cert, f.ca, f.cca
}

// Reloads counts certificate reloads after the first load.
func (f *Files) Reloads() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reloads
}

// Server is a listener's configuration: Cert and Key required, mutual
// TLS when ClientCA is set; TLS 1.2 at least.
func (f *Files) Server() (*tls.Config, error) {
	if f.cfg.Cert == "" {
		return nil, errors.New("tls: a listener needs a certificate and key (--tls-cert, --tls-key)")
	}
	base := func() *tls.Config {
		c := &tls.Config{MinVersion: tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
				cert, _, _ := f.current()
				return cert, nil
			}}
		if f.cfg.ClientCA != "" {
			_, _, cca := f.current()
			c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, cca
		}
		return c
	}
	c := base()
	// Each handshake takes the client CA pool as it is now.
	c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return base(), nil }
	return c, nil
}

// MutualTLS reports whether listeners require client certificates.
func (f *Files) MutualTLS() bool { return f.cfg.ClientCA != "" }

// Client is a connection's configuration: the server verified against CA
// or the system roots, this side's certificate
// offered when Cert is set.
func (f *Files) Client() *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.cfg.ServerName}
	if f.cfg.CA != "" {
		// The CA as loaded now: crypto/tls verifies the server's name
		// (an IP address included) only through RootCAs, so a client
		// takes a new CA file at its next start; its own certificate
		// reloads at each handshake.
		_, ca, _ := f.current()
		c.RootCAs = ca
	}
	if f.cfg.Cert != "" {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _, _ := f.current()
			return cert, nil
		}
	}
	return c
}
