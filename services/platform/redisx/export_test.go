package redisx

import (
	"context"
	"net"
)

// WithNetDial makes each dial attempt with dial instead of net.Dialer, so a
// test can count and shape real dials (plain TCP only).
func WithNetDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(o *options) { o.netDial = dial }
}
