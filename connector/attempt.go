package connector

import (
	"context"
	"time"
)

// Attempt names one charge attempt for Inquire and Void with everything payd
// recorded about it. A gateway that can answer from the idempotency key
// alone (the sandbox) needs only IdempotencyKey; one that cannot look a
// charge up by key (Stripe) uses the Reference it answered before, and,
// when none was recorded (the response was lost), the ChargeRequest that was
// sent, to replay it under the same key.
type Attempt struct {
	IdempotencyKey string
	Reference      string        // the gateway's id of the charge, "" when no answer was recorded
	Charge         ChargeRequest // exactly what Charge was sent for this attempt
	StartedAt      time.Time     // when the attempt's intent was recorded (before the call)
}

// AttemptGateway is a Gateway that answers an inquiry or a void better with
// the whole Attempt than with its key (see Attempt). InquireAttempt and
// VoidAttempt have the contract of Gateway.Inquire and Gateway.Void, except
// for fencing, which Capabilities says.
type AttemptGateway interface {
	InquireAttempt(ctx context.Context, a Attempt) (Result, error)
	VoidAttempt(ctx context.Context, a Attempt) (Result, error)
}

// Capabilities says what a gateway can promise beyond the common contract.
// The engine checks it: a promise a gateway cannot keep is never assumed.
type Capabilities struct {
	// FencesKeys: an inquiry or a void of a key the gateway never saw fences
	// it (no later request with that key ever charges), so StatusNotFound
	// confirms "never charged" at once. The sandbox fences; Stripe cannot.
	FencesKeys bool
	// KeyWindow, for a gateway that does not fence, is how long after an
	// attempt started a request under its key could still act at the
	// gateway (Stripe keeps an idempotency key 24 hours, and payd sends
	// nothing under an attempt's key after that). StatusNotFound for an
	// attempt younger than that is not a confirmation: the engine treats it
	// as an unknown outcome and asks again later (NotFoundFinal).
	KeyWindow time.Duration
}

// CapabilityReporter is a Gateway that says its Capabilities. Every gateway
// must: one that does not is assumed to fence nothing and to keep keys
// forever, so its StatusNotFound never confirms anything.
type CapabilityReporter interface {
	Capabilities() Capabilities
}

// CapabilitiesOf answers g's Capabilities (see CapabilityReporter).
func CapabilitiesOf(g Gateway) Capabilities {
	if c, ok := g.(CapabilityReporter); ok {
		return c.Capabilities()
	}
	return Capabilities{FencesKeys: false, KeyWindow: 1<<63 - 1}
}

// NotFoundFinal says whether a StatusNotFound about an attempt that started
// at startedAt confirms at now that it was never charged: always for a
// gateway that fences keys, else only once no request under the key can
// act any more (after KeyWindow). Pure.
func NotFoundFinal(c Capabilities, startedAt, now time.Time) bool {
	if c.FencesKeys {
		return true
	}
	return !startedAt.IsZero() && now.Sub(startedAt) >= c.KeyWindow
}

// InquireAttempt asks g about attempt a: by InquireAttempt when g is an
// AttemptGateway, else by Inquire with the key.
func InquireAttempt(ctx context.Context, g Gateway, a Attempt) (Result, error) {
	if ag, ok := g.(AttemptGateway); ok {
		return ag.InquireAttempt(ctx, a)
	}
	return g.Inquire(ctx, a.IdempotencyKey)
}

// VoidAttempt voids attempt a at g: by VoidAttempt when g is an
// AttemptGateway, else by Void with the key.
func VoidAttempt(ctx context.Context, g Gateway, a Attempt) (Result, error) {
	if ag, ok := g.(AttemptGateway); ok {
		return ag.VoidAttempt(ctx, a)
	}
	return g.Void(ctx, a.IdempotencyKey)
}
