package main

import (
	"strings"
	"testing"

	"github.com/payd/payd/jobs"
)

// TestRedisURLConfig: REDIS_URL's three forms are read at start into the
// RedisConn every client is built from; a form payd cannot use stops every
// command at start, saying why and never quoting the password.
func TestRedisURLConfig(t *testing.T) {
	t.Parallel()
	for url, want := range map[string]jobs.RedisKind{
		"":                                     jobs.RedisSingle, // the default
		"redis://:pw@127.0.0.1:6379/3":         jobs.RedisSingle,
		"redis-sentinel://s1,s2/0?master=payd": jobs.RedisSentinel,
		"redis-cluster://n1:7000,n2:7001":      jobs.RedisCluster,
	} {
		c, err := loadConfig(func(k string) string {
			if k == "REDIS_URL" {
				return url
			}
			return ""
		})
		if err != nil {
			t.Errorf("REDIS_URL=%q: %v", url, err)
			continue
		}
		conn, err := c.redisConn()
		if err != nil || conn.Kind() != want {
			t.Errorf("REDIS_URL=%q: %v kind %q, want %q", url, err, conn.Kind(), want)
		}
	}
	for _, url := range []string{"redis-sentinel://:hunter2@s1,s2/0", "redis-cluster://:hunter2@n1/1", "tcp://:hunter2@h:1"} {
		_, err := loadConfig(func(k string) string {
			if k == "REDIS_URL" {
				return url
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), "REDIS_URL") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("REDIS_URL=%q: error %v, want one naming REDIS_URL without the password", url, err)
		}
	}
}
