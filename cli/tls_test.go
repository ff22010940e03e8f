package cli_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warden-sh/warden/cli"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type testPKI struct {
	dir                string
	ca                 *x509.Certificate
	caKey              *ecdsa.PrivateKey
	caFile             string
	certFile, keyFile  string // the server's
	clientCert, client string // the client's certificate and key files
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir()}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "warden test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caKey = key
	p.caFile = p.write(t, "ca.pem", "CERTIFICATE", der)
	p.certFile, p.keyFile = p.issue(t, "server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.client = p.issue(t, "client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

func (p *testPKI) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	f := filepath.Join(p.dir, name)
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// issue signs a certificate for 127.0.0.1 with the given serial and
// writes it and its key, replacing earlier files of that name.
func (p *testPKI) issue(t *testing.T, name string, serial int64, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+"-key.pem", "EC PRIVATE KEY", kder)
}

// serverSerial handshakes with addr and returns the serial it presents.
func serverSerial(t *testing.T, addr string, p *testPKI) int64 {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// TestServeTLS: serve speaks TLS with --tls-cert/--tls-key, the CLI and the
// MCP proxy verify it with --ca, clear text is refused, the start is
// receipted as TLS, and a renewed certificate is picked up without a
// restart.
func TestServeTLS(t *testing.T) {
	p := newTestPKI(t)
	s := startServer(t, filepath.Join(t.TempDir(), "data"), "--dev", "--tls-cert", p.certFile, "--tls-key", p.keyFile)
	addr := strings.TrimPrefix(s.URL, "http://")
	url := "https://" + addr

	if code, _, errs := run(t, "incident", "list", "--url", url, "--ca", p.caFile); code != cli.ExitOK {
		t.Fatalf("CLI over TLS with --ca: %d %s", code, errs)
	}
	if code, _, errs := run(t, "incident", "list", "--url", url); code == cli.ExitOK || !strings.Contains(errs, "certificate") {
		t.Fatalf("CLI without the CA trusted a server it cannot verify: %d %s", code, errs)
	}
	if resp, err := http.Get("http://" + addr + "/health"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("clear-text HTTP answered on the TLS port")
		}
	}
	// The MCP proxy verifies the same way.
	t.Setenv("WARDEN_URL", url)
	t.Setenv("WARDEN_CA", p.caFile)
	t.Setenv("WARDEN_TOKEN", "")
	cs, done, stderr := stdioSession(t)
	if got, isErr := stdioCall(t, cs, "guardian_status", map[string]any{}); isErr || got["status"] != "operational" {
		t.Fatalf("guardian_status through the MCP proxy over TLS: %v", got)
	}
	cs.Close()
	if code := <-done; code != cli.ExitOK {
		t.Fatalf("warden mcp exited %d: %s", code, stderr.String())
	}
	code, out, errs := run(t, "receipts", "list", "--url", url, "--ca", p.caFile, "--type", "server_start", "--json")
	var list []struct{ Body map[string]any }
	if code != cli.ExitOK || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Body["tls"] != true {
		t.Fatalf("server_start does not record TLS: %d %s %s", code, out, errs)
	}

	// A renewed certificate is served without a restart.
	if n := serverSerial(t, addr, p); n != 2 {
		t.Fatalf("serial %d, want 2", n)
	}
	time.Sleep(10 * time.Millisecond) // a later mtime for the renewed files
	p.issue(t, "server", 7, x509.ExtKeyUsageServerAuth)
	deadline := time.Now().Add(10 * time.Second)
	for serverSerial(t, addr, p) != 7 {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was never served")
		}
		time.Sleep(100 * time.Millisecond) // the server checks the files about once a second
	}
}

// TestServeMutualTLS: with --tls-client-ca a client without a certificate
// from that CA is refused at the handshake; one with --cert/--key gets in.
func TestServeMutualTLS(t *testing.T) {
	p := newTestPKI(t)
	s := startServer(t, filepath.Join(t.TempDir(), "data"), "--dev", "--tls-cert", p.certFile, "--tls-key", p.keyFile, "--tls-client-ca", p.caFile)
	url := "https://" + strings.TrimPrefix(s.URL, "http://")
	if code, _, errs := run(t, "incident", "list", "--url", url, "--ca", p.caFile); code == cli.ExitOK {
		t.Fatalf("no client certificate, yet answered: %s", errs)
	}
	if code, _, errs := run(t, "incident", "list", "--url", url, "--ca", p.caFile, "--cert", p.clientCert, "--key", p.client); code != cli.ExitOK {
		t.Fatalf("with a client certificate: %d %s", code, errs)
	}
}

// TestServeRefusesClearTextOffLoopback: bearer tokens never cross a
// network in clear text by default; half a TLS pair is a usage error.
// Nothing is bound: the refusals come before listening.
func TestServeRefusesClearTextOffLoopback(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	code, _, errs := run(t, "serve", "--data", data, "--addr", "0.0.0.0:0")
	if code != cli.ExitUsage || !strings.Contains(errs, "without TLS") || !strings.Contains(errs, "--insecure-plaintext") {
		t.Fatalf("clear text off loopback: %d %s", code, errs)
	}
	p := newTestPKI(t)
	code, _, errs = run(t, "serve", "--data", data, "--addr", "127.0.0.1:0", "--tls-cert", p.certFile)
	if code != cli.ExitUsage || !strings.Contains(errs, "go together") {
		t.Fatalf("half a pair: %d %s", code, errs)
	}
}
