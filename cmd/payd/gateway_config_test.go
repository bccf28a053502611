package main

import (
	"strings"
	"testing"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/connector/stripe"
)

// TestGatewayConfig: PAYD_GATEWAY picks a gateway of the registry (the
// sandbox by default); stripe needs STRIPE_API_KEY, and builds the Stripe
// connector at STRIPE_API_BASE with the webhook secrets; a name not in the
// registry is refused at start, and the key appears in no error.
func TestGatewayConfig(t *testing.T) {
	t.Parallel()
	load := func(env map[string]string) (config, error) {
		return loadConfig(func(k string) string { return env[k] })
	}
	c, err := load(nil)
	if err != nil || c.Gateway != "sandbox" || c.gatewayName() != "sandbox" {
		t.Fatalf("default: %q, %v", c.Gateway, err)
	}
	gw, err := gateways[c.Gateway](c, &deps{})
	if _, ok := gw.(*sandbox.Sandbox); err != nil || !ok {
		t.Fatalf("default gateway %T, %v", gw, err)
	}
	if _, err := load(map[string]string{"PAYD_GATEWAY": "stripe"}); err == nil || !strings.Contains(err.Error(), "STRIPE_API_KEY") {
		t.Fatalf("stripe without a key: %v", err)
	}
	if _, err := load(map[string]string{"PAYD_GATEWAY": "paypal", "STRIPE_API_KEY": "sk_test_secret123"}); err == nil ||
		strings.Contains(err.Error(), "sk_test_secret123") {
		t.Fatalf("unknown gateway: %v", err)
	}
	c, err = load(map[string]string{"PAYD_GATEWAY": "stripe", "STRIPE_API_KEY": "sk_test_secret123",
		"STRIPE_API_BASE": "http://127.0.0.1:12111", "STRIPE_WEBHOOK_SECRET": "whsec_new,whsec_old"})
	if err != nil || c.gatewayName() != "stripe" || len(c.StripeWebhookSecrets) != 2 {
		t.Fatalf("stripe: %+v, %v", c.StripeWebhookSecrets, err)
	}
	gw, err = gateways[c.Gateway](c, &deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := gw.(*stripe.Connector); !ok {
		t.Fatalf("stripe gateway %T", gw)
	}
	if _, ok := gw.(connector.NotificationParser); !ok {
		t.Fatal("the Stripe gateway parses no webhooks")
	}
	if connector.CapabilitiesOf(gw).FencesKeys || !connector.CapabilitiesOf(&sandbox.Sandbox{}).FencesKeys {
		t.Fatal("capabilities")
	}
	if _, ok := operatorGateway(c).(*stripe.Connector); !ok {
		t.Fatal("the operator's gateway is not Stripe")
	}
}
