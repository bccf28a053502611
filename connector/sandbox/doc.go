// Package sandbox owns payd's fake payment service provider and bank: a
// deterministic connector.Gateway with its own ledger of what it charged. The
// ledger is the judge of invariant I1 (no double charge): DoubleCharged lists
// every payment that holds more than one charge.
//
// The sandbox runs in-process (New) or over HTTP (Handler, served by
// `payd sandbox` on its own port, and NewClient on the calling side) so that
// timeouts, refused connections and lost responses are real. Its routes are
// split in two: CustomerHandler (the 3-D Secure challenge pages, which a
// customer's browser reaches, so payd mounts them on its public port) and
// OperatorHandler (the gateway API, ledger, entries, faults), which is never
// on a public port. References carry 128 random bits, so a challenge page
// cannot be found by guessing. Magic payment method ids choose the outcome
// (the table in docs/surfaces.md, "The sandbox gateway"):
//
//	pm_card_visa, any other card token  succeeds
//	pm_card_declined                    hard decline card_declined
//	pm_card_insufficient_funds          soft decline insufficient_funds
//	pm_card_3ds                         requires action until CompleteAction
//	pm_card_flaky                       transient gateway_503 on the first two
//	                                    tries per payment, then succeeds
//	pm_card_timeout_after_charge        charges, then the answer is lost
//	pm_card_unknown                     charges, then the answer is lost and
//	                                    every call about its key times out
//	                                    until Faults.AnswerUnknown
//	bank 123456789 / ba_123456789       SENT, settles after Config.SettleDelay
//	bank 100XX / ba_100XX               settles, then returned with code RXX
//	                                    after Config.ReturnDelay
//	bank 11111111… / ba_11111111…       hard decline account_invalid
//	any other bank account              SENT, then settles
//	an IBAN (SEPA, SWIFT)               judged by the digits of its national
//	                                    part: DE89370400440532013000 settles
//
// Charges and refunds are idempotent by key: a key that has an outcome always
// answers with that outcome and never adds a second ledger entry. Inquire on a
// key the sandbox never charged answers StatusNotFound and fences the key, so
// a late Charge with it is refused; "not found" therefore proves "not charged".
// Void cancels a pending 3-D Secure charge for good (its challenge can no
// longer be completed, its key no longer charges) and fences an unknown key
// the same way. List reads the ledger's charges and refunds by creation
// time, for reconciliation.
//
// The package imports only connector, payment and the standard library; it
// must not import store, intake or processor.
package sandbox
