// Command kube-api-get is the in-cluster API client of the e2e images: like
// any client in a pod it reads the mounted ServiceAccount token and CA,
// reaches the API server at the kubernetes Service address the kubelet puts
// in the environment, verifies the server certificate against that CA, and
// prints the HTTP status and body of one GET.
//
//	kube-api-get [-anonymous] [-expect STATUS] PATH
//
// It exits 0 when the status equals -expect (default 200), else 1.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	anonymous := flag.Bool("anonymous", false, "send no token")
	expect := flag.Int("expect", http.StatusOK, "expected HTTP status")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: kube-api-get [-anonymous] [-expect STATUS] PATH")
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *anonymous, *expect); err != nil {
		fmt.Fprintln(os.Stderr, "kube-api-get:", err)
		os.Exit(1)
	}
}

func run(path string, anonymous bool, expect int) error {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return fmt.Errorf("KUBERNETES_SERVICE_HOST/PORT not set")
	}
	caPEM, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("no certificate in %s/ca.crt", saDir)
	}
	url := "https://" + net.JoinHostPort(host, port) + path
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if !anonymous {
		token, err := os.ReadFile(saDir + "/token")
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+string(token))
	}
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	fmt.Printf("GET %s (token: %v): %d\n%s\n", url, !anonymous, resp.StatusCode, body)
	if resp.StatusCode != expect {
		return fmt.Errorf("status %d, expected %d", resp.StatusCode, expect)
	}
	return nil
}
