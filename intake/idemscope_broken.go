//go:build paydbroken_idemscope

package intake

import (
	"strconv"
	"sync/atomic"
	"time"
)

// TEST ONLY. The build tag paydbroken_idemscope makes a deliberately
// broken build for the fault checker's I5 negative test
// (cmd/payd/fault_negative_test.go): every request's Idempotency-Key is
// looked up, locked and stored under a scope of its own (the key plus a
// nonce), so no lookup finds an earlier request's record and a retry or
// replay of an accepted request creates another payment. Never build payd
// for real use with this tag.
func idemScope(key string) string {
	return key + "#" + strconv.FormatInt(time.Now().UnixNano(), 36) + "." + strconv.FormatInt(idemNonce.Add(1), 36)
}

var idemNonce atomic.Int64
