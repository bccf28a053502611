package jobs

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// RedisKind is how payd reaches its Redis.
type RedisKind string

const (
	// RedisSingle is one server: redis://, rediss:// or unix://.
	RedisSingle RedisKind = "single"
	// RedisSentinel is a primary found, and followed across failovers,
	// through Redis Sentinel: redis-sentinel://.
	RedisSentinel RedisKind = "sentinel"
	// RedisCluster is a Redis Cluster: redis-cluster://.
	RedisCluster RedisKind = "cluster"
)

// Default ports of a host named without one.
const (
	defaultSentinelPort = "26379"
	defaultRedisPort    = "6379"
)

// RedisConn is where payd's Redis is, as REDIS_URL names it. It is the one
// place that URL is read: every client payd makes — asynq's client,
// server, scheduler and inspector, asynqmon, intake's rate limiter, the
// readiness ping, the operator commands, the benchmark — is built from it,
// so they all reach the same Redis the same way and follow the same
// failover. It is an asynq.RedisConnOpt.
//
// The forms (README, "Configuration"):
//
//	redis://[[user]:password@]host[:6379][/db][?go-redis options]     one server (go-redis's redis.ParseURL; rediss:// for TLS, unix:///path.sock?db=N)
//	redis-sentinel://[[user]:password@]host[:26379][,host[:26379]…][/db]?master=NAME[&sentinel_username=U][&sentinel_password=P]
//	redis-cluster://[[user]:password@]host[:6379][,host[:6379]…]
//
// The user and password of the two multi-host forms are the data nodes'
// (the primary and its replicas, or the cluster's nodes); sentinels that
// require a password of their own take sentinel_password. (asynq's own
// ParseRedisURI, which knows redis-sentinel:// with master=, gives the
// password to the sentinels instead and drops the database number; go-redis's
// ParseFailoverURL and ParseClusterURL read redis:// with ?addr= lists. payd
// parses its forms here, once, into go-redis's options.) The multi-host
// forms have no TLS variant.
type RedisConn struct {
	kind     RedisKind
	single   *redis.Options
	failover *redis.FailoverOptions
	cluster  *redis.ClusterOptions
	poolSize int // per node; 0: go-redis's default
}

var _ asynq.RedisConnOpt = RedisConn{}

// ParseRedisURL reads a REDIS_URL. Its errors never quote the URL: it may
// hold a password.
func ParseRedisURL(s string) (RedisConn, error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return RedisConn{}, errors.New("not a URL: want redis://, rediss://, unix://, redis-sentinel:// or redis-cluster://")
	}
	switch scheme {
	case "redis", "rediss", "unix":
		opt, err := redis.ParseURL(s)
		if err != nil {
			return RedisConn{}, redactURLError(err)
		}
		return RedisConn{kind: RedisSingle, single: opt}, nil
	case "redis-sentinel":
		return parseSentinel(rest)
	case "redis-cluster":
		return parseCluster(rest)
	default:
		return RedisConn{}, fmt.Errorf("unknown scheme %q: want redis://, rediss://, unix://, redis-sentinel:// or redis-cluster://", scheme)
	}
}

// multiHost is the parts of a URL whose authority lists several hosts.
type multiHost struct {
	addrs              []string
	username, password string
	path               string
	query              url.Values
}

// parseMultiHost splits "[userinfo@]host[:port][,host[:port]…][/path][?query]".
// net/url cannot: it refuses a list of hosts with IPv6 literals.
func parseMultiHost(rest, defaultPort string) (multiHost, error) {
	var m multiHost
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	hosts := authority
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		info := authority[:i]
		hosts = authority[i+1:]
		user, pass, _ := strings.Cut(info, ":")
		var err error
		if m.username, err = url.PathUnescape(user); err != nil {
			return m, errors.New("the user is not valid percent-encoding")
		}
		if m.password, err = url.PathUnescape(pass); err != nil {
			return m, errors.New("the password is not valid percent-encoding")
		}
	}
	if hosts == "" {
		return m, errors.New("no host")
	}
	for h := range strings.SplitSeq(hosts, ",") {
		addr, err := hostPort(h, defaultPort)
		if err != nil {
			return m, err
		}
		m.addrs = append(m.addrs, addr)
	}
	u, err := url.Parse("x://h" + tail)
	if err != nil {
		return m, redactURLError(err)
	}
	if u.Fragment != "" {
		return m, errors.New("a fragment (#…) means nothing here")
	}
	m.path, m.query = u.Path, u.Query()
	return m, nil
}

// hostPort is h with defaultPort when it names none.
func hostPort(h, defaultPort string) (string, error) {
	if h == "" {
		return "", errors.New("an empty host in the list")
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		// no port: a name, an IPv4 address or a bracketed IPv6 one
		if strings.Contains(strings.Trim(h, "[]"), ":") && !strings.HasPrefix(h, "[") {
			return "", fmt.Errorf("host %q: put an IPv6 address in brackets", h)
		}
		host, port = strings.Trim(h, "[]"), defaultPort
	}
	if host == "" || strings.ContainsAny(host, "[]/@ ") {
		return "", fmt.Errorf("host %q is not valid", h)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("host %q: port is not valid", h)
	}
	return net.JoinHostPort(host, port), nil
}

// db is the database number of a URL path ("", "/" or "/N").
func db(path string) (int, error) {
	p := strings.Trim(path, "/")
	if p == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("the path must be a database number, not %q", path)
	}
	return n, nil
}

func parseSentinel(rest string) (RedisConn, error) {
	m, err := parseMultiHost(rest, defaultSentinelPort)
	if err != nil {
		return RedisConn{}, fmt.Errorf("redis-sentinel: %w", err)
	}
	n, err := db(m.path)
	if err != nil {
		return RedisConn{}, fmt.Errorf("redis-sentinel: %w", err)
	}
	opt := &redis.FailoverOptions{SentinelAddrs: m.addrs, Username: m.username, Password: m.password, DB: n}
	for k, vs := range m.query {
		v := vs[len(vs)-1]
		switch k {
		case "master":
			opt.MasterName = v
		case "sentinel_username":
			opt.SentinelUsername = v
		case "sentinel_password":
			opt.SentinelPassword = v
		default:
			return RedisConn{}, fmt.Errorf("redis-sentinel: unknown parameter %q (known: master, sentinel_username, sentinel_password)", k)
		}
	}
	if opt.MasterName == "" {
		return RedisConn{}, errors.New("redis-sentinel: ?master=NAME is required (the name the sentinels monitor)")
	}
	return RedisConn{kind: RedisSentinel, failover: opt}, nil
}

func parseCluster(rest string) (RedisConn, error) {
	m, err := parseMultiHost(rest, defaultRedisPort)
	if err != nil {
		return RedisConn{}, fmt.Errorf("redis-cluster: %w", err)
	}
	if n, err := db(m.path); err != nil || n != 0 {
		return RedisConn{}, errors.New("redis-cluster: a Redis Cluster has only database 0: leave the path empty")
	}
	for k := range m.query {
		return RedisConn{}, fmt.Errorf("redis-cluster: unknown parameter %q (none are known)", k)
	}
	return RedisConn{kind: RedisCluster, cluster: &redis.ClusterOptions{Addrs: m.addrs, Username: m.username,
		Password: m.password}}, nil
}

// redactURLError drops the URL (it may hold a password) from net/url's
// errors.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("not a valid URL: %w", ue.Err)
	}
	return err
}

// Kind is how payd reaches its Redis.
func (c RedisConn) Kind() RedisKind { return c.kind }

// WithPoolSize is c with at most n connections per Redis node (its
// primary, or each cluster node).
func (c RedisConn) WithPoolSize(n int) RedisConn {
	c.poolSize = n
	return c
}

// NewClient builds a client: a *redis.Client for one server, a
// sentinel-backed *redis.Client that follows the primary across failovers,
// or a *redis.ClusterClient. The caller closes it.
func (c RedisConn) NewClient() redis.UniversalClient {
	switch c.kind {
	case RedisSentinel:
		o := *c.failover
		o.SentinelAddrs = append([]string(nil), o.SentinelAddrs...) // go-redis reorders them
		if c.poolSize > 0 {
			o.PoolSize = c.poolSize
		}
		return redis.NewFailoverClient(&o)
	case RedisCluster:
		o := *c.cluster
		o.Addrs = append([]string(nil), o.Addrs...)
		if c.poolSize > 0 {
			o.PoolSize = c.poolSize
		}
		return redis.NewClusterClient(&o)
	case RedisSingle:
		o := *c.single
		if c.poolSize > 0 {
			o.PoolSize = c.poolSize
		}
		return redis.NewClient(&o)
	}
	panic("jobs: RedisConn not from ParseRedisURL")
}

// MakeRedisClient makes c an asynq.RedisConnOpt: asynq's server, scheduler
// and inspector and asynqmon build their clients (and close them) from it.
func (c RedisConn) MakeRedisClient() any { return c.NewClient() }

// String says where Redis is, without credentials: for logs.
func (c RedisConn) String() string {
	switch c.kind {
	case RedisSentinel:
		return fmt.Sprintf("sentinel master %q via %s, db %d", c.failover.MasterName,
			strings.Join(c.failover.SentinelAddrs, ","), c.failover.DB)
	case RedisCluster:
		return "cluster via " + strings.Join(c.cluster.Addrs, ",")
	case RedisSingle:
		return fmt.Sprintf("single %s, db %d", c.single.Addr, c.single.DB)
	}
	return "none"
}
