//go:build !paydbroken_noaudit

package store

// unauditedSucceeded is false in every real build: every status change
// writes its audit row. Only the deliberately broken build for the fault
// checker's I4 negative test (-tags paydbroken_noaudit, see
// audit_broken.go) sets it.
const unauditedSucceeded = false
