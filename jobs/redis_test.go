package jobs

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// redisConnFields is what a RedisConn says, flattened for cmp.
type redisConnFields struct {
	Kind                         RedisKind
	Addrs                        []string
	Master                       string
	DB                           int
	Username, Password           string
	SentinelUsername, SentinelPw string
	TLS                          bool
}

func fieldsOf(c RedisConn) redisConnFields {
	switch c.kind {
	case RedisSentinel:
		o := c.failover
		return redisConnFields{Kind: c.kind, Addrs: o.SentinelAddrs, Master: o.MasterName, DB: o.DB, Username: o.Username,
			Password: o.Password, SentinelUsername: o.SentinelUsername, SentinelPw: o.SentinelPassword}
	case RedisCluster:
		o := c.cluster
		return redisConnFields{Kind: c.kind, Addrs: o.Addrs, Username: o.Username, Password: o.Password}
	default:
		o := c.single
		return redisConnFields{Kind: c.kind, Addrs: []string{o.Addr}, DB: o.DB, Username: o.Username, Password: o.Password,
			TLS: o.TLSConfig != nil}
	}
}

// TestParseRedisURL: every form of REDIS_URL the README documents maps to
// the options go-redis (and through RedisConn, asynq) connects with.
func TestParseRedisURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url  string
		want redisConnFields
	}{
		{"redis://127.0.0.1:6379/0", redisConnFields{Kind: RedisSingle, Addrs: []string{"127.0.0.1:6379"}}},
		{"redis://:s3cret@redis.internal/4", redisConnFields{Kind: RedisSingle, Addrs: []string{"redis.internal:6379"}, DB: 4, Password: "s3cret"}},
		{"rediss://payd:pw@redis.example.com:6380/1", redisConnFields{Kind: RedisSingle, Addrs: []string{"redis.example.com:6380"}, DB: 1,
			Username: "payd", Password: "pw", TLS: true}},
		{"redis-sentinel://10.0.0.1:26379,10.0.0.2:26379,10.0.0.3:26379/0?master=mymaster", redisConnFields{Kind: RedisSentinel,
			Addrs: []string{"10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"}, Master: "mymaster"}},
		{"redis-sentinel://:p%40ss@s1,s2:26380,[::1]/3?master=payd", redisConnFields{Kind: RedisSentinel,
			Addrs: []string{"s1:26379", "s2:26380", "[::1]:26379"}, Master: "payd", DB: 3, Password: "p@ss"}},
		{"redis-sentinel://payd:pw@s1:26379?master=m&sentinel_username=sen&sentinel_password=spw", redisConnFields{Kind: RedisSentinel,
			Addrs: []string{"s1:26379"}, Master: "m", Username: "payd", Password: "pw", SentinelUsername: "sen", SentinelPw: "spw"}},
		{"redis-cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002", redisConnFields{Kind: RedisCluster,
			Addrs: []string{"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"}}},
		{"redis-cluster://:pw@[2001:db8::1]:7000,node2/", redisConnFields{Kind: RedisCluster,
			Addrs: []string{"[2001:db8::1]:7000", "node2:6379"}, Password: "pw"}},
		{"redis-cluster://node1:7000/0", redisConnFields{Kind: RedisCluster, Addrs: []string{"node1:7000"}}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			c, err := ParseRedisURL(tc.url)
			if err != nil {
				t.Fatalf("ParseRedisURL: %v", err)
			}
			if diff := cmp.Diff(tc.want, fieldsOf(c)); diff != "" {
				t.Errorf("(-want +got)\n%s", diff)
			}
			if s := c.String(); strings.Contains(s, "s3cret") || strings.Contains(s, "p@ss") || strings.Contains(s, "spw") ||
				(tc.want.Password != "" && strings.Contains(s, ":"+tc.want.Password+"@")) {
				t.Errorf("String() %q shows a password", s)
			}
		})
	}
}

// TestParseRedisURLRefuses: a REDIS_URL payd cannot use is refused at
// start with a reason, and the reason never quotes the password.
func TestParseRedisURLRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, want string }{
		{"", "not a URL"},
		{"127.0.0.1:6379", "not a URL"},
		{"memcached://h:1", `unknown scheme "memcached"`},
		{"redis-sentinel://h1,h2/0", "?master=NAME is required"},
		{"redis-sentinel://h1?master=m&addr=h2", `unknown parameter "addr"`},
		{"redis-sentinel://:hunter2@h1/x?master=m", "database number"},
		{"redis-sentinel://:hunter2@h1,,h2?master=m", "empty host"},
		{"redis-sentinel://:hunter2@?master=m", "no host"},
		{"redis-sentinel://:hunter2@h1:99999?master=m", "port is not valid"},
		{"redis-sentinel://:hunter2@::1?master=m", "brackets"},
		{"redis-sentinel://:hunter2@h1?master=m#frag", "fragment"},
		{"redis-cluster://:hunter2@h1:7000/2", "only database 0"},
		{"redis-cluster://:hunter2@h1:7000?read_only=true", `unknown parameter "read_only"`},
		{"redis://:hunter2@h1:notaport/0", "not a valid URL"},
		{"redis://:hunter2@h1:6379/x", "invalid database number"},
	} {
		_, err := ParseRedisURL(tc.url)
		if err == nil {
			t.Errorf("ParseRedisURL(%q) = nil error, want one saying %q", tc.url, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRedisURL(%q) = %v, want it to say %q", tc.url, err, tc.want)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("ParseRedisURL(%q) error quotes the password: %v", tc.url, err)
		}
	}
}

// FuzzParseRedisURL: no REDIS_URL panics payd at start; what parses has a
// kind and at least one address, and its String (logged at start) is the
// same whatever the passwords: it never shows them.
func FuzzParseRedisURL(f *testing.F) {
	for _, s := range []string{"redis://127.0.0.1:6379/0", "rediss://u:p@h:1/2", "unix:///tmp/r.sock?db=3",
		"redis-sentinel://:pw@h1:26379,h2/0?master=m", "redis-sentinel://[::1],[::2]:1?master=m&sentinel_password=x",
		"redis-cluster://h1:7000,h2:7001", "redis-cluster://u:p@[::1]:7000/", "redis-sentinel://@,?master=",
		"redis-cluster://%zz@h", "redis-sentinel://h?master=m&master=n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseRedisURL(s)
		if err != nil {
			return
		}
		f := fieldsOf(c)
		if f.Kind == "" || len(f.Addrs) == 0 {
			t.Fatalf("ParseRedisURL(%q) = %+v: no kind or no address", s, f)
		}
		if got, other := c.String(), withOtherSecrets(c).String(); got != other {
			t.Fatalf("String() depends on the credentials: %q with them, %q with others", got, other)
		}
	})
}

// withOtherSecrets is c with other users and passwords.
func withOtherSecrets(c RedisConn) RedisConn {
	switch c.kind {
	case RedisSentinel:
		o := *c.failover
		o.Username, o.Password, o.SentinelUsername, o.SentinelPassword = "u", "other", "su", "sother"
		c.failover = &o
	case RedisCluster:
		o := *c.cluster
		o.Username, o.Password = "u", "other"
		c.cluster = &o
	default:
		o := *c.single
		o.Username, o.Password = "u", "other"
		c.single = &o
	}
	return c
}
