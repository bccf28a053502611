package webhook

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Keyring seals endpoint secrets at rest with AES-256-GCM, so that a
// database dump alone cannot sign a delivery. Keys come from the
// environment (PAYD_WEBHOOK_KEYS): "id:key[,id:key…]", each key 32 bytes
// as 64 hex digits or standard base64; the first seals, every one opens.
// Rotation: put a new key first and keep the old ones after it; secrets
// sealed with an old key still open, and each is sealed again with the new
// key when it is next written (a rotation of the endpoint's secret). Remove
// an old key only once no sealed secret names it.
type Keyring struct {
	ids  []string
	aead map[string]cipher.AEAD
}

// ErrNoKeys: webhooks need PAYD_WEBHOOK_KEYS.
var ErrNoKeys = errors.New("webhook: no sealing key (PAYD_WEBHOOK_KEYS)")

// ParseKeyring reads "id:key[,id:key…]".
func ParseKeyring(spec string) (*Keyring, error) {
	k := &Keyring{aead: map[string]cipher.AEAD{}}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, raw, ok := strings.Cut(part, ":")
		if !ok || id == "" || strings.ContainsAny(id, ":,") {
			return nil, fmt.Errorf("webhook: key %q: want id:key", id)
		}
		key, err := hex.DecodeString(raw)
		if err != nil {
			key, err = base64.StdEncoding.DecodeString(raw)
		}
		if err != nil || len(key) != 32 {
			return nil, fmt.Errorf("webhook: key %q: want 32 bytes as hex or base64", id)
		}
		if _, dup := k.aead[id]; dup {
			return nil, fmt.Errorf("webhook: key %q twice", id)
		}
		block, _ := aes.NewCipher(key)
		gcm, _ := cipher.NewGCM(block)
		k.ids, k.aead[id] = append(k.ids, id), gcm
	}
	if len(k.ids) == 0 {
		return nil, ErrNoKeys
	}
	return k, nil
}

// Seal encrypts a secret with the first key: "<id>:<base64(nonce|ciphertext)>".
// aad binds it to its row (the endpoint id): a sealed secret copied to
// another endpoint does not open.
func (k *Keyring) Seal(secret, aad string) (string, error) {
	id := k.ids[0]
	g := k.aead[id]
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := g.Seal(nonce, nonce, []byte(secret), []byte(aad))
	return id + ":" + base64.StdEncoding.EncodeToString(out), nil
}

// Open decrypts what Seal made with any key of the ring.
func (k *Keyring) Open(sealed, aad string) (string, error) {
	id, b64, ok := strings.Cut(sealed, ":")
	g := k.aead[id]
	if !ok || g == nil {
		return "", fmt.Errorf("webhook: sealed with key %q, which is not in PAYD_WEBHOOK_KEYS", id)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) < g.NonceSize() {
		return "", errors.New("webhook: malformed sealed secret")
	}
	plain, err := g.Open(nil, raw[:g.NonceSize()], raw[g.NonceSize():], []byte(aad))
	if err != nil {
		return "", errors.New("webhook: sealed secret does not open (wrong key or row)")
	}
	return string(plain), nil
}

// NewSecret is a fresh endpoint secret: whsec_ and 32 random bytes in hex.
func NewSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return SecretPrefix + hex.EncodeToString(b)
}
