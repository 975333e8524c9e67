package ring

import (
	"hash/fnv"
	"slices"
)

// View is one membership as a replica sees it, immutable: the live members
// and whom each key belongs to.
type View struct {
	self    string
	members []string // sorted identities
	weights []uint64 // hash of each member, in the same order
}

// NewView is the membership of members as seen by self. Self owns keys only
// if it is among members.
func NewView(self string, members ...string) View {
	m := slices.Clone(members)
	slices.Sort(m)
	m = slices.Compact(m)
	w := make([]uint64, len(m))
	for i, id := range m {
		w[i] = hash(id)
	}
	return View{self: self, members: m, weights: w}
}

// Self is the identity of the replica that sees this view.
func (v View) Self() string { return v.self }

// Members are the live members' identities, sorted.
func (v View) Members() []string { return slices.Clone(v.members) }

// Has reports whether identity is a live member.
func (v View) Has(identity string) bool {
	_, ok := slices.BinarySearch(v.members, identity)
	return ok
}

// Owner is the member that owns key, "" if there is none.
func (v View) Owner(key string) string {
	k := mix(hash(key))
	best, owner := uint64(0), ""
	for i, id := range v.members {
		// Members are sorted, so ties (about 2^-64) go to the first.
		if w := mix(v.weights[i] ^ k); owner == "" || w > best {
			best, owner = w, id
		}
	}
	return owner
}

// Rank is how many members come before self for key: 0 for its owner, 1
// for the member that would own it if the owner left, and so on;
// len(members) if self is not a member.
func (v View) Rank(key string) int {
	i, ok := slices.BinarySearch(v.members, v.self)
	if !ok {
		return len(v.members)
	}
	k := mix(hash(key))
	mine, rank := mix(v.weights[i]^k), 0
	for j := range v.members {
		// As Owner breaks ties: the first member in order wins.
		if w := mix(v.weights[j] ^ k); w > mine || (w == mine && j < i) {
			rank++
		}
	}
	return rank
}

// Owns reports whether key belongs to the replica that sees this view.
func (v View) Owns(key string) bool { return v.self != "" && v.Owner(key) == v.self }

// Equal reports whether two views have the same members.
func (v View) Equal(o View) bool { return slices.Equal(v.members, o.members) }

func hash(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}

// mix is splitmix64's finalizer. FNV alone spreads keys that differ in their
// last bytes poorly; after mixing, the member weights of one key behave as
// independent draws, which rendezvous hashing needs for balance.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
