package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// ProxyCost times n POSTs of an empty AdmissionReview (answered 400 at
// once) to the address the API server calls, through the proxy, and as
// many straight to a webhook process's own port, in turn, each side over
// one kept-alive HTTP/1.1 TLS connection as the API server's. The
// difference is what the proxy adds to a webhook call.
func (c *Cluster) ProxyCost(ctx context.Context, n int) (viaProxy, direct []time.Duration, err error) {
	if c.proxy == nil {
		return nil, nil, errors.New("no proxy: the API server calls a webhook process directly")
	}
	wio := c.Env.Environment.WebhookInstallOptions
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(wio.LocalServingCAData) {
		return nil, nil, errors.New("no serving CA")
	}
	newClient := func() *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}},
		}}
	}
	proxied := "https://" + net.JoinHostPort(wio.LocalServingHost, strconv.Itoa(wio.LocalServingPort)) + "/validate-workflowexecution"
	straight := "https://" + c.proxy.backends[0] + "/validate-workflowexecution"
	pc, dc := newClient(), newClient()
	for range n {
		for _, side := range []struct {
			client *http.Client
			url    string
			into   *[]time.Duration
		}{{pc, proxied, &viaProxy}, {dc, straight, &direct}} {
			d, err := post(ctx, side.client, side.url)
			if err != nil {
				return nil, nil, err
			}
			*side.into = append(*side.into, d)
		}
	}
	return viaProxy, direct, nil
}

func post(ctx context.Context, c *http.Client, url string) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader([]byte("{}")))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	d := time.Since(start)
	if resp.StatusCode >= http.StatusInternalServerError {
		return 0, fmt.Errorf("POST %s: %s", url, resp.Status)
	}
	return d, nil
}
