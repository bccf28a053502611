//go:build !paydbroken_nosweep

package processor

// sweepDisabled is false in every real build. Only the deliberately broken
// build for the fault checker's negative test (-tags paydbroken_nosweep, see
// sweep_disabled.go) sets it.
const sweepDisabled = false
