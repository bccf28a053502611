//go:build !paydbroken_idemscope

package intake

// idemScope is the Idempotency-Key a request is looked up, locked and
// stored under: the client's key, in every real build. Only the
// deliberately broken build for the fault checker's I5 negative test
// (-tags paydbroken_idemscope, see idemscope_broken.go) changes it.
func idemScope(key string) string { return key }
