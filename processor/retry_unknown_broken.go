//go:build paydbroken_retryunknown

package processor

// TEST ONLY. The build tag paydbroken_retryunknown makes a deliberately
// broken build for the fault checker's I1 negative test
// (cmd/payd/fault_negative_test.go): decide takes a charge whose answer was
// lost (timeout, reset, 5xx: maybe processed) as not charged and retries it
// as a new attempt under a new gateway key instead of inquiring, so a
// charge whose answer was lost is charged again. Never build payd for real
// use with this tag.
const retryUnknownAsNotCharged = true
