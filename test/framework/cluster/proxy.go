package cluster

import (
	"context"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// proxy spreads TCP connections round-robin over backends, skipping one
// that refuses: several webhook processes behind the one address that the
// API server's webhook registration names, as a Service would.
type proxy struct {
	ln       net.Listener
	backends []string
	next     atomic.Uint64
	accepted atomic.Int64
	wg       sync.WaitGroup
}

func startProxy(addr string, backends []string) (*proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &proxy{ln: ln, backends: backends}
	p.wg.Go(p.serve)
	return p, nil
}

func (p *proxy) serve() {
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		p.wg.Go(func() { p.forward(conn) })
	}
}

func (p *proxy) forward(conn net.Conn) {
	defer conn.Close()
	var backend net.Conn
	for range p.backends {
		addr := p.backends[int(p.next.Add(1))%len(p.backends)]
		var d net.Dialer
		if c, err := d.DialContext(context.Background(), "tcp", addr); err == nil {
			backend = c
			break
		}
	}
	if backend == nil {
		return
	}
	defer backend.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(backend, conn); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, backend); done <- struct{}{} }()
	<-done
}

func (p *proxy) close() {
	_ = p.ln.Close()
}

// ProxyConnections is how many connections the webhook proxy has accepted
// (0 without one): a caller that does not keep its connections alive
// shows here.
func (c *Cluster) ProxyConnections() int64 {
	if c.proxy == nil {
		return 0
	}
	return c.proxy.accepted.Load()
}
