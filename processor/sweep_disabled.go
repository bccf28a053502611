//go:build paydbroken_nosweep

package processor

// TEST ONLY. The build tag paydbroken_nosweep makes a deliberately broken
// build for the fault checker's negative test
// (cmd/payd/fault_negative_test.go): Sweep does nothing, so after a Redis
// wipe the lost tasks are never re-enqueued and payments stay non-final.
// Never build payd for real use with this tag.
const sweepDisabled = true
