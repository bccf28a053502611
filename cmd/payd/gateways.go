package main

import (
	"net/http"
	"sort"

	"github.com/payd/payd/connector"
	"github.com/payd/payd/connector/sandbox"
	"github.com/payd/payd/connector/stripe"
)

// gateways is every gateway payd can charge through, by PAYD_GATEWAY.
// Adding one is a package under connector/ and one line here. The sandbox
// is the default (and the demo's).
var gateways = map[string]func(cfg config, d *deps) (connector.Gateway, error){
	"sandbox": sandboxGateway,
	"stripe":  stripeGateway,
}

func gatewayNames() []string {
	var out []string
	for n := range gateways {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// sandboxGateway is the standalone sandbox at PAYD_SANDBOX_URL, else one
// in process (whose pages and operator routes payd then serves).
func sandboxGateway(cfg config, d *deps) (connector.Gateway, error) {
	if cfg.SandboxURL != "" {
		return sandbox.NewClient(cfg.SandboxURL, &http.Client{}), nil
	}
	d.sandbox = newSandbox(cfg)
	return d.sandbox, nil
}

// stripeGateway is Stripe at STRIPE_API_BASE (Stripe's own by default).
func stripeGateway(cfg config, _ *deps) (connector.Gateway, error) {
	return newStripe(cfg, &http.Client{})
}

func newStripe(cfg config, hc *http.Client) (*stripe.Connector, error) {
	return stripe.New(stripe.Config{APIKey: cfg.StripeAPIKey, APIBase: cfg.StripeAPIBase, HTTPClient: hc,
		ReturnURL: cfg.StripeReturnURL, WebhookSecrets: cfg.StripeWebhookSecrets, WebhookTolerance: cfg.StripeWebhookTolerance})
}
