package tokens_test

import (
	"context"
	"crypto/rsa"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/tokens"
	"github.com/tollgate/tollgate/services/platform/tokens/tokentest"
)

// removal is one call of an OnKeysRemoved hook: the kids it was told and
// what the verifier answered, from inside the hook, for the tokens of
// the test.
type removal struct {
	kids      []string
	publishes map[string]bool // by subject
	refused   map[string]bool // Verify refused the token, by subject
}

// TestOnKeysRemovedTellsTheKidsThatLeft: the routine refresh (KeepFresh)
// tells the hooks the kid of a key a fetched set no longer holds — removed,
// or its kid now naming another key — and every kid when the issuer
// changes; by the time a hook runs the new set is in use (Publishes is
// false for the removed key's token and Verify refuses it) and it may
// call the Verifier (no lock held). Refreshes that remove nothing tell
// nothing: the first call is the removal's. Recheck answers from memory
// what Verify would, and is not reported to OnCache.
func TestOnKeysRemovedTellsTheKidsThatLeft(t *testing.T) {
	iss := tokentest.Start(t, issuer)
	a, b := tokentest.Keys()
	both := func(active string) *tokens.KeyRing {
		r, err := tokens.NewKeyRing(map[string]*rsa.PrivateKey{"key-a": a, "key-b": b}, active)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	iss.SetRing(both("key-a"))
	raws := map[string]string{"of-a": iss.Mint(t, tokentest.Token{Audience: mcpAud, Subject: "of-a"})}
	iss.SetRing(both("key-b"))
	raws["of-b"] = iss.Mint(t, tokentest.Token{Audience: mcpAud, Subject: "of-b"})

	var reports int // OnCache calls (Verify runs on this goroutine, before KeepFresh starts)
	var v *tokens.Verifier
	claims := map[string]*tokens.Claims{}
	removals := make(chan removal, 8)
	// Every key counts as long seen (NewKeyGrace: TestOnKeysRemovedSparesAKeyJustAdded).
	v = newVerifier(t, iss, tokens.VerifierOptions{KeysMaxAge: 20 * time.Millisecond, NewKeyGrace: time.Nanosecond, OnCache: func(bool) { reports++ }})
	for sub, raw := range raws {
		c, err := v.Verify(context.Background(), raw)
		if err != nil {
			t.Fatalf("%s: %v", sub, err)
		}
		if c.KeyID != "key-"+sub[len("of-"):] {
			t.Errorf("%s: KeyID = %q", sub, c.KeyID)
		}
		claims[sub] = c
	}
	before := reports
	for sub, c := range claims {
		if err := v.Recheck(c); err != nil || !v.Publishes(c) {
			t.Errorf("%s while its key is published: Recheck = %v, Publishes = %v, want nil, true", sub, err, v.Publishes(c))
		}
	}
	if reports != before {
		t.Errorf("Recheck reported %d cache answers to OnCache, want none", reports-before)
	}
	remove := v.OnKeysRemoved(func(kids []string) {
		r := removal{kids: kids, publishes: map[string]bool{}, refused: map[string]bool{}}
		for sub, c := range claims {
			r.publishes[sub] = v.Publishes(c)
			_, err := v.Verify(context.Background(), c.Raw)
			r.refused[sub] = errors.Is(err, tokens.ErrInvalidToken)
		}
		removals <- r
	})
	defer remove()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go v.KeepFresh(ctx)
	next := func(what string) removal {
		t.Helper()
		select {
		case r := <-removals:
			return r
		case <-time.After(30 * time.Second):
			t.Fatalf("no OnKeysRemoved call within 30s after %s", what)
		}
		return removal{}
	}

	// key-a leaves the set.
	ring, _ := tokens.NewKeyRing(map[string]*rsa.PrivateKey{"key-b": b}, "key-b")
	iss.SetRing(ring)
	r := next("key-a was removed")
	if !slices.Equal(r.kids, []string{"key-a"}) || r.publishes["of-a"] || !r.refused["of-a"] || !r.publishes["of-b"] || r.refused["of-b"] {
		t.Fatalf("key-a removed: hook told %v, publishes %v, Verify refused %v; want [key-a], only of-b published and accepted", r.kids, r.publishes, r.refused)
	}
	if err := v.Recheck(claims["of-a"]); !errors.Is(err, tokens.ErrInvalidToken) || !strings.Contains(err.Error(), `"key-a"`) {
		t.Errorf("Recheck of key-a's token: %v, want invalid token naming key-a", err)
	}
	if err := v.Recheck(claims["of-b"]); err != nil {
		t.Errorf("Recheck of key-b's token: %v", err)
	}

	// key-b's kid now names key a's material (and key-c is added, which
	// removes nothing): the key that signed of-b is gone.
	ring, _ = tokens.NewKeyRing(map[string]*rsa.PrivateKey{"key-b": a, "key-c": b}, "key-b")
	iss.SetRing(ring)
	r = next("key-b was replaced")
	if !slices.Equal(r.kids, []string{"key-b"}) || r.publishes["of-b"] || !r.refused["of-b"] {
		t.Fatalf("kid key-b re-keyed: hook told %v, publishes %v, Verify refused %v; want [key-b], of-b neither published nor accepted", r.kids, r.publishes, r.refused)
	}

	// Another issuer: every kid of the previous set is told.
	iss.SetIssuer("https://other.example.com")
	r = next("the issuer changed")
	slices.Sort(r.kids)
	if !slices.Equal(r.kids, []string{"key-b", "key-c"}) {
		t.Fatalf("issuer changed: hook told %v, want [key-b key-c]", r.kids)
	}
}

// TestOnKeysRemovedSparesAKeyJustAdded: during an auth-server rollout a
// fetch may be answered by a pod that does not have a just-added key yet.
// That key's absence is not its removal: within NewKeyGrace of the
// verifier first seeing it, it is not told to the hooks (its tokens are
// refused meanwhile, as any unknown kid's). A key of the verifier's first
// fetch is long seen: its removal is told at once.
func TestOnKeysRemovedSparesAKeyJustAdded(t *testing.T) {
	iss := tokentest.Start(t, issuer)
	a, b := tokentest.Keys()
	ring := func(active string, keys map[string]*rsa.PrivateKey) *tokens.KeyRing {
		r, err := tokens.NewKeyRing(keys, active)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	iss.SetRing(ring("key-a", map[string]*rsa.PrivateKey{"key-a": a}))
	v := newVerifier(t, iss, tokens.VerifierOptions{KeysMaxAge: 20 * time.Millisecond})
	ofA, err := v.Verify(context.Background(), iss.Mint(t, tokentest.Token{Audience: mcpAud, Subject: "of-a"}))
	if err != nil {
		t.Fatal(err)
	}
	told := make(chan []string, 8)
	defer v.OnKeysRemoved(func(kids []string) { told <- kids })()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go v.KeepFresh(ctx)
	// waitUntil polls what the verifier publishes: a fetch of the set the
	// issuer now serves has happened.
	waitUntil := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not within 30s: %s", what)
			}
		}
	}

	// key-b is added (a new pod), and the next fetch is answered by an old
	// pod without it.
	iss.SetRing(ring("key-b", map[string]*rsa.PrivateKey{"key-a": a, "key-b": b}))
	ofB, err := v.Verify(context.Background(), iss.Mint(t, tokentest.Token{Audience: mcpAud, Subject: "of-b"}))
	if err != nil {
		t.Fatal(err)
	}
	iss.SetRing(ring("key-a", map[string]*rsa.PrivateKey{"key-a": a}))
	waitUntil("a set without key-b is in use", func() bool { return !v.Publishes(ofB) })
	// Then key-a, published since before the verifier started, is removed
	// for good: the one kid told is key-a's — key-b's absence never was.
	iss.SetRing(ring("key-b", map[string]*rsa.PrivateKey{"key-b": b}))
	select {
	case kids := <-told:
		if !slices.Equal(kids, []string{"key-a"}) {
			t.Fatalf("first OnKeysRemoved call told %v, want [key-a] (key-b was added moments before its absence)", kids)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("key-a's removal was not told within 30s")
	}
	if v.Publishes(ofA) || !v.Publishes(ofB) {
		t.Errorf("after key-a's removal: Publishes(of-a) = %v, Publishes(of-b) = %v, want false, true", v.Publishes(ofA), v.Publishes(ofB))
	}
}
