// Package stripe is payd's Stripe connector: connector.Gateway (with
// connector.AttemptGateway and connector.CapabilityReporter) on Stripe's
// PaymentIntents and Refunds through the official client stripe-go, and
// connector.NotificationVerifier for Stripe's webhooks.
//
// The mapping, operation by operation (README, "Stripe"):
//
//   - Charge: POST /v1/payment_intents with confirm=true, the attempt key
//     as Idempotency-Key and in metadata (payd_attempt_key,
//     payd_payment_id), capture_method=automatic, payment_method from the
//     payment. succeeded is SUCCEEDED; requires_action with
//     next_action.redirect_to_url is REQUIRES_ACTION with that URL; a
//     card_error is a decline, classed by ClassifyDecline (one table).
//   - Inquire: GET /v1/payment_intents/{id} by the recorded reference; with
//     none (the response was lost) a search by metadata
//     (GET /v1/payment_intents/search); not found there, the create is
//     replayed with the same Idempotency-Key while Stripe still keeps it
//     (ReplayWindow < 24 h): Stripe answers the original's result, or runs
//     the request once if it never arrived. Either way one PaymentIntent per
//     attempt. After the key's 24 h only the search answers; see
//     InquireAttempt for why its "not found" is then final.
//   - Void: POST /v1/payment_intents/{id}/cancel (its own idempotency key);
//     a void never creates a PaymentIntent.
//   - Refund: POST /v1/refunds with the refund id as Idempotency-Key.
//   - Settlement: cards settle at once: a succeeded PaymentIntent is settled.
//   - List: GET /v1/payment_intents and GET /v1/refunds with created[gte]
//     and created[lt], every page (starting_after).
//   - Notifications: webhooks verified by webhook.ConstructEventWithOptions
//     (Stripe-Signature, tolerance), turned into connector.Notification hints.
//
// Stripe cannot fence a key (an inquiry does not stop a later request with
// the key from charging), so Capabilities says FencesKeys false with a
// 24 h KeyWindow, and the engine takes a "not found" as proof only after it.
//
// It imports connector, payment, stripe-go and the standard library; never
// store, intake or processor. The API key goes only into the client's
// Authorization header: never into an error, a log or a result.
package stripe
