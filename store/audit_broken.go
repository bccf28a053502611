//go:build paydbroken_noaudit

package store

// TEST ONLY. The build tag paydbroken_noaudit makes a deliberately broken
// build for the fault checker's I4 negative test
// (cmd/payd/fault_negative_test.go): a change to SUCCEEDED made by the
// batched statement (applyRows: a charge recorded by a worker) writes no
// audit row, so the payment's timeline misses the transition. Never build
// payd for real use with this tag.
const unauditedSucceeded = true
