package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Policy is what an operator allows of webhook URLs: plain http, and
// addresses that are private, loopback, link-local or cloud metadata (tests
// and demos on one machine need both; production needs neither).
type Policy struct {
	AllowHTTP    bool
	AllowPrivate bool
}

// Errors of CheckURL and of a refused connection.
var (
	ErrURL        = errors.New("webhook: the URL must be absolute http(s) with a host")
	ErrHTTP       = errors.New("webhook: the URL must be https")
	ErrPrivateURL = errors.New("webhook: the URL resolves to a private, loopback, link-local or metadata address")
)

// blocked reports whether ip is an address a webhook must not reach:
// loopback, private (RFC 1918, ULA), link-local (and so the 169.254.169.254
// metadata service), unspecified, multicast, CGNAT, and IPv4 mapped in IPv6
// of any of those.
func blocked(ip netip.Addr) bool {
	ip = ip.Unmap()
	cgnat := netip.MustParsePrefix("100.64.0.0/10")
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() || cgnat.Contains(ip) ||
		ip == netip.MustParseAddr("fd00:ec2::254")
}

// CheckURL validates an endpoint URL at registration: absolute, http(s)
// (https unless the policy allows http), no user info, and every address its
// host resolves to allowed by the policy. The connection is checked again
// when made (Client), on the address dialed.
func CheckURL(ctx context.Context, raw string, p Policy, r *net.Resolver) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return ErrURL
	}
	if u.Scheme == "http" && !p.AllowHTTP {
		return ErrHTTP
	}
	if p.AllowPrivate {
		return nil
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		if blocked(ip) {
			return ErrPrivateURL
		}
		return nil
	}
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return ErrPrivateURL
	}
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("webhook: resolve %s: %w", host, err)
	}
	for _, a := range addrs {
		if blocked(a) {
			return ErrPrivateURL
		}
	}
	return nil
}

// Client is the HTTP client deliveries use: the timeout, no redirects
// followed (a 3xx is the answer), no proxy from the environment, and a
// dialer that refuses a blocked address after resolution — on the IP
// actually dialed, so a name that starts resolving to a private address
// after registration (DNS rebinding) is still refused.
func Client(p Policy, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: timeout, Control: func(network, address string, _ syscall.RawConn) error {
		if p.AllowPrivate {
			return nil
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("webhook: dial %s: %w", address, ErrPrivateURL)
		}
		if blocked(ap.Addr()) {
			return fmt.Errorf("webhook: dial %s: %w", address, ErrPrivateURL)
		}
		return nil
	}}
	tr := &http.Transport{DialContext: d.DialContext, Proxy: nil, TLSHandshakeTimeout: timeout,
		ResponseHeaderTimeout: timeout, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}
	return &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}
