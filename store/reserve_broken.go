//go:build paydbroken_doublereserve

package store

// TEST ONLY. The build tag paydbroken_doublereserve makes a deliberately
// broken build for the fault checker's I3 negative test
// (cmd/payd/fault_negative_test.go): a new payment reserves twice its
// amount on the invoice it pays, so the invoice counts more as applied to
// it than its lines hold. Never build payd for real use with this tag.
const reserveAmount = "2 * d.amount"
