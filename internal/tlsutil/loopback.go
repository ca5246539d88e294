package tlsutil

import (
	"net"
	"strings"
)

// IsLoopback reports whether a HOST:PORT address can only be reached from this machine. An
// empty host, 0.0.0.0 and :: listen on every interface and are not loopback; names other than
// localhost are not trusted to resolve to loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
