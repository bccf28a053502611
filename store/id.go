package store

import (
	"crypto/rand"
	"encoding/hex"
	"io/fs"
	"strings"

	"github.com/google/uuid"
)

// NewID returns a time-ordered identifier with a type prefix (pay_, att_, …):
// a UUIDv7 without dashes, so IDs sort by creation time.
func NewID(prefix string) string {
	u := uuid.Must(uuid.NewV7())
	return prefix + strings.ReplaceAll(u.String(), "-", "")
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

func mustSub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return s
}
