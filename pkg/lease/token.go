package lease

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/targetlock/targetlock/pkg/target"
)

// Token is one acquisition of one target's lock. Its ID goes into the Lease's
// holderIdentity and into the WFE's lock-token annotation.
type Token struct {
	Key target.Key
	ID  string

	acquired time.Time
	// written is the Lease as this token last wrote it, shared by copies
	// of the token: Release deletes exactly that version without reading
	// it first. Every write to a held lock is its holder's, so any other
	// version means the lock was claimed, taken over or swept since.
	written *written
}

type written struct {
	uid     types.UID
	version string
}

func (t Token) wrote(lease *coordinationv1.Lease) {
	if t.written != nil && lease != nil {
		t.written.uid, t.written.version = lease.UID, lease.ResourceVersion
	}
}

// Acquired is when the lock was taken.
func (t Token) Acquired() time.Time { return t.acquired }

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
