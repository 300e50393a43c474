package clients

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRecordPendingStopsAtTheFirstFailure: with Redis not answering, a
// reload tick makes one recording attempt, not one per waiting removal
// (each may take removalRecordTimeout, and the ticks also reload the
// registry); what failed and what came after it wait for the next tick,
// oldest first. review2: every waiting removal was tried at each tick.
func TestRecordPendingStopsAtTheFirstFailure(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	pending := []removal{{ids: []string{"a"}}, {ids: []string{"b"}}, {ids: []string{"c"}}}
	var tried []string
	failFrom := func(bad string) RecordRemovals {
		return func(_ context.Context, _ time.Time, ids []string) error {
			tried = append(tried, ids[0])
			if ids[0] >= bad {
				return errors.New("redis: connection refused")
			}
			return nil
		}
	}
	left := recordPending(context.Background(), pending, failFrom("a"), log)
	if len(tried) != 1 || len(left) != 3 {
		t.Errorf("Redis down: tried %v, left %d; want one attempt and all 3 left", tried, len(left))
	}
	tried = nil
	left = recordPending(context.Background(), left, failFrom("b"), log)
	if len(tried) != 2 || len(left) != 2 || left[0].ids[0] != "b" {
		t.Errorf("a recorded, b failing: tried %v, left %v; want a and b tried, b and c left", tried, left)
	}
	tried = nil
	if left = recordPending(context.Background(), left, failFrom("z"), log); len(left) != 0 || len(tried) != 2 {
		t.Errorf("Redis back: tried %v, left %v", tried, left)
	}
}

// TestRemovalRecordedAgainAfterInFlightRequests: a removal is recorded
// at the swap and, removalFollowUp later, once more with that later time
// if the client is still absent — so that an access token signed just
// after the swap by a request that found the client just before it (iat a
// second later than the swap) is refused as well (review2: only the
// swap's own time was recorded). A client added back before the follow-up
// gets none: its new tokens stay valid.
func TestRemovalRecordedAgainAfterInFlightRequests(t *testing.T) {
	defer func(d time.Duration) { removalFollowUp = d }(removalFollowUp)
	rules := Rules{Resources: []string{"https://mcp.example/mcp"}}
	client := func(id string) string {
		return "  - client_id: " + id + "\n    client_name: " + id + "\n    redirect_uris: [\"https://app.example/cb\"]\n    token_endpoint_auth_method: none\n    resources: [\"https://mcp.example/mcp\"]\n"
	}
	type record struct {
		at  time.Time
		ids []string
	}
	for _, readd := range []bool{false, true} {
		// Where the follow-up must come it is waited for, so it can be
		// short. Where the client is added back before it, that must
		// happen first, and it takes the test's own write after the first
		// record, a tick and settleDelay (100 ms): 200 ms left a loaded
		// machine (CI, -race) under 100 ms for the test goroutine to run,
		// and it failed when the write came 220 ms after the swap. 5 s
		// gives the re-add room; the test checks it was in time.
		removalFollowUp = 200 * time.Millisecond
		if readd {
			removalFollowUp = 5 * time.Second
		}
		path := filepath.Join(t.TempDir(), "clients.yaml")
		write := func(content string) { t.Helper(); writeAtomically(t, path, content) }
		write("clients:\n" + client("kept") + client("gone"))
		s, problems := LoadFile(path, rules)
		if len(problems) > 0 {
			t.Fatal(problems)
		}
		records := make(chan record, 8)
		ctx, cancel := context.WithCancel(context.Background())
		watching := make(chan struct{})
		go func() {
			defer close(watching)
			s.Watch(ctx, path, rules, 10*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, func(_ context.Context, at time.Time, ids []string) error {
				records <- record{at, ids}
				return nil
			}, nil)
		}()
		defer func() { cancel(); <-watching }() // a Fatal below: stopped before removalFollowUp is restored
		// Watch starts from the bytes LoadFile parsed, so the first write
		// is a change wherever it lands; the new content is written again
		// (with another comment) until a removal is recorded, at most 300
		// times.
		var first record
		for i := 0; ; i++ {
			if i == 300 {
				t.Fatal("the removal was not recorded")
			}
			write("clients:\n" + client("kept") + "# " + strconv.Itoa(i) + "\n")
			select {
			case first = <-records:
			case <-time.After(100 * time.Millisecond):
				continue
			}
			break
		}
		if len(first.ids) != 1 || first.ids[0] != "gone" {
			t.Fatalf("first record %v", first)
		}
		// until is when the records are looked at: for the client added
		// back, once its follow-up was due and a second more of ticks had
		// their chance to record it wrongly; for the one still absent,
		// once its follow-up came (at most 30 s: it is due 200 ms after
		// the swap, at the first tick then) and 200 ms more of ticks had
		// their chance to record it twice.
		until := time.Now().Add(30 * time.Second)
		if readd {
			write("clients:\n" + client("kept") + client("gone"))
			// The watcher swaps the re-added client in before the
			// follow-up's tick looks it up: it is taken (a positive signal)
			// before the follow-up is due, or the order this case tests
			// was not set up.
			for {
				_, err := s.Get("gone")
				if late := time.Since(first.at); late >= removalFollowUp {
					t.Fatalf("the client added back was not taken within %v of the swap, before its follow-up (%v): %v", late, removalFollowUp, err)
				}
				if err == nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			until = first.at.Add(removalFollowUp + time.Second)
		}
		var second []record
	collect:
		for {
			select {
			case r := <-records:
				second = append(second, r)
				if !readd && len(second) == 1 {
					until = time.Now().Add(200 * time.Millisecond)
				}
			case <-time.After(time.Until(until)):
				break collect
			}
		}
		cancel()
		<-watching
		switch {
		case readd && len(second) != 0:
			t.Errorf("added back before the follow-up: recorded again %v, want nothing", second)
		case !readd && (len(second) != 1 || len(second[0].ids) != 1 || second[0].ids[0] != "gone" || second[0].at.Before(first.at.Add(removalFollowUp))):
			t.Errorf("still absent: follow-up records %v, want one for [gone] at or after %v", second, first.at.Add(removalFollowUp))
		}
	}
}

// writeAtomically replaces path's content at once (a new file renamed
// over it), as the kubelet swaps a mounted Secret.
func writeAtomically(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// TestEmptyRegistryFileRefused: a registry file emptied (an editor or cp
// truncating it before writing, or a mistake) is refused as a whole
// instead of taken as "every client removed" — which now also records
// every client as removed fleet-wide, cutting every access token. An
// explicit "clients: []" is taken.
func TestEmptyRegistryFileRefused(t *testing.T) {
	rules := Rules{Resources: []string{"https://mcp.example/mcp"}}
	path := filepath.Join(t.TempDir(), "clients.yaml")
	writeAtomically(t, path, "clients:\n  - client_id: app\n    redirect_uris: [\"https://app.example/cb\"]\n    token_endpoint_auth_method: none\n    resources: [\"https://mcp.example/mcp\"]\n")
	s, problems := LoadFile(path, rules)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	records := make(chan []string, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Watch(ctx, path, rules, 10*time.Millisecond, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, func(_ context.Context, _ time.Time, ids []string) error {
		records <- ids
		return nil
	}, nil)
	for i := 0; i < 20; i++ { // the empty file, seen by many ticks
		writeAtomically(t, path, strings.Repeat(" ", i%2)+"\n")
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := s.Get("app"); err != nil || len(records) != 0 {
		t.Fatalf("after an empty file: app %v, removals recorded %d; want app kept, none recorded", err, len(records))
	}
	for i := 0; ; i++ {
		if i == 300 {
			t.Fatal("clients: [] was not taken")
		}
		writeAtomically(t, path, "clients: []\n# "+strconv.Itoa(i)+"\n")
		select {
		case ids := <-records:
			if len(ids) != 1 || ids[0] != "app" {
				t.Errorf("clients: [] recorded %v, want [app]", ids)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}
