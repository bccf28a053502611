package main

import (
	"testing"
	"time"

	"github.com/payd/payd/connector/sandbox"
)

// TestNotifyConfig: the notification settings are read from the env, the
// sandbox posts to the intake of PAYD_ADDR by default and signs with the
// first secret, and nonsense is refused at start.
func TestNotifyConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{"PAYD_GATEWAY_NOTIFY_SECRET": "new,old", "PAYD_ADDR": ":9999",
		"PAYD_SANDBOX_NOTIFY_COPIES": "5", "PAYD_SANDBOX_NOTIFY_ORDER": "reversed", "PAYD_SANDBOX_NOTIFY_DELAY": "2s"}
	c, err := loadConfig(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if len(c.NotifySecrets) != 2 || c.NotifyTolerance != 5*time.Minute {
		t.Fatalf("config %+v", c)
	}
	n := sandboxNotify(c)
	if n.URL != "http://127.0.0.1:9999/v1/gateway/notifications" || n.Secret != "new" || n.Copies != 5 ||
		n.Order != sandbox.NotifyReversed || n.Delay != 2*time.Second {
		t.Fatalf("sandbox notify %+v", n)
	}
	if n := sandboxNotify(config{}); n.URL != "" || n.Secret != "" {
		t.Fatalf("notifications on without a secret: %+v", n)
	}
	for k, v := range map[string]string{"PAYD_SANDBOX_NOTIFY_ORDER": "sideways", "PAYD_SANDBOX_NOTIFY_COPIES": "0",
		"PAYD_GATEWAY_NOTIFY_TOLERANCE": "-1s"} {
		if _, err := loadConfig(func(name string) string {
			if name == k {
				return v
			}
			return ""
		}); err == nil {
			t.Errorf("%s=%s accepted", k, v)
		}
	}
}
