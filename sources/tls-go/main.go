// Command tls-go is the start of an HTTPS client: it loads the system's trusted CA certificates,
// which an empty (scratch) image lacks unless the recipe adds the ca-certificates extra.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

func main() {
	pool, err := x509.SystemCertPool()
	if err != nil || len(pool.Subjects()) == 0 { //nolint:staticcheck // Subjects is fine for a count
		fmt.Println("no trusted CA certificates: HTTPS requests would fail")
		os.Exit(1)
	}
	config := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	fmt.Printf("TLS client ready (minimum TLS 1.%d, system CA pool loaded)\n", config.MinVersion-tls.VersionTLS10)
}
