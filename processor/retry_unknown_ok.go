//go:build !paydbroken_retryunknown

package processor

// retryUnknownAsNotCharged is false in every real build: a charge whose
// outcome is unknown is inquired, never charged again under a new key.
// Only the deliberately broken build for the fault checker's I1 negative
// test (-tags paydbroken_retryunknown, see retry_unknown_broken.go) sets it.
const retryUnknownAsNotCharged = false
