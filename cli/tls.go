package cli

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Transport security. `serve` speaks TLS itself (--tls-cert, --tls-key),
// reloading the pair when the files change so a renewed certificate needs
// no restart, and optionally requires client certificates signed by
// --tls-client-ca (mutual TLS). It refuses a non-loopback address without
// TLS unless --insecure-plaintext says so, which the server_start receipt
// records. The CLI and the MCP proxy verify servers with --ca (or the
// system roots) and present --cert/--key when the server asks.

// certReloader serves a certificate pair from files, re-reading them when
// their size or modification time changes (checked at most every
// interval). A pair that fails to load keeps the previous one in use.
type certReloader struct {
	certFile, keyFile string
	interval          time.Duration
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // size and mtime of both files at the last load
	checked time.Time
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, interval: time.Second, log: log}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

// fileStamp identifies the files' current contents cheaply.
func (r *certReloader) fileStamp() (string, error) {
	var b strings.Builder
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String(), nil
}

func (r *certReloader) load() error {
	stamp, err := r.fileStamp()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

// GetCertificate is tls.Config.GetCertificate.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if now.Sub(r.checked) >= r.interval {
		r.checked = now
		if stamp, err := r.fileStamp(); err == nil && stamp != r.stamp {
			if err := r.load(); err != nil {
				r.log.Error("TLS certificate not reloaded; the previous one stays in use", "cert", r.certFile, "err", err)
				r.stamp = stamp // say it once per change
			} else {
				r.log.Info("TLS certificate reloaded", "cert", r.certFile)
			}
		}
	}
	return r.cert, nil
}

// serverTLS builds the server's TLS configuration, or nil without
// --tls-cert. Both files of the pair are required together.
func serverTLS(certFile, keyFile, clientCA string, log *slog.Logger) (*tls.Config, error) {
	if certFile == "" && keyFile == "" {
		if clientCA != "" {
			return nil, errors.New("--tls-client-ca needs --tls-cert and --tls-key")
		}
		return nil, nil
	}
	if certFile == "" || keyFile == "" {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	r, err := newCertReloader(certFile, keyFile, log)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
	if clientCA != "" {
		pool, err := certPool(clientCA)
		if err != nil {
			return nil, fmt.Errorf("--tls-client-ca: %w", err)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

func certPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) || bytes.Count(pem, []byte("BEGIN CERTIFICATE")) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// isLoopback reports whether addr listens on loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// requirePrivateTransport refuses to carry bearer tokens in clear text
// off loopback unless the operator said so explicitly.
func requirePrivateTransport(addr string, tlsOn, insecurePlaintext bool) error {
	if tlsOn || insecurePlaintext || isLoopback(addr) {
		return nil
	}
	return fmt.Errorf("refusing to serve on %q without TLS: every bearer token and forensic bundle would cross the network readable. Give --tls-cert and --tls-key, or --insecure-plaintext to accept that (it is receipted)", addr)
}

// httpClient is the client of the CLI and the MCP proxy: it verifies
// servers with --ca (default: the system roots) and presents --cert and
// --key when the server asks for a client certificate.
func (e *env) httpClient(timeout time.Duration) (*http.Client, error) {
	ca, cert, key := e.ca, e.cert, e.key
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pool, err := certPool(ca)
		if err != nil {
			return nil, usageError{fmt.Errorf("--ca: %w", err)}
		}
		cfg.RootCAs = pool
	}
	if cert != "" || key != "" {
		if cert == "" || key == "" {
			return nil, usageError{errors.New("--cert and --key go together")}
		}
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, usageError{fmt.Errorf("client certificate: %w", err)}
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = cfg
	return &http.Client{Timeout: timeout, Transport: t}, nil
}
