//go:build !paydbroken_doublereserve

package store

// reserveAmount is what CreatePayment's statement reserves on an invoice
// for its new payments (d.amount: the sum of their amounts) in every real
// build. Only the deliberately broken build for the fault checker's I3
// negative test (-tags paydbroken_doublereserve, see reserve_broken.go)
// reserves twice that.
const reserveAmount = "d.amount"
