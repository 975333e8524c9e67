package lease

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"

	"github.com/targetlock/targetlock/pkg/target"
)

// Token is one acquisition of one target's lock. Its ID goes into the Lease's
// holderIdentity and into the WFE's lock-token annotation.
type Token struct {
	Key target.Key
	ID  string

	acquired time.Time
}

// newID returns identity plus a random nonce: unique per acquisition, and
// still showing which pod holds the lock.
func newID(identity string) string {
	var nonce [8]byte
	_, _ = rand.Read(nonce[:]) // crypto/rand.Read never fails on supported platforms
	return identity + "_" + hex.EncodeToString(nonce[:])
}

// PodOf returns the identity part of a token ID (the pod that holds a lock),
// without the nonce that makes the ID a capability.
func PodOf(id string) string {
	if i := strings.LastIndexByte(id, '_'); i > 0 {
		return id[:i]
	}
	return id
}
