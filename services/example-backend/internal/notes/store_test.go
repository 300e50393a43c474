package notes

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestStoreKeepsEachSubjectsNotesNewestFirst(t *testing.T) {
	clock := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	s := NewStore(func() time.Time { clock = clock.Add(time.Second); return clock })
	a1, _ := s.Add("alice", "one")
	a2, _ := s.Add("alice", "two")
	b1, _ := s.Add("bob", "bob's")
	got := s.List("alice", 0)
	if len(got) != 2 || got[0].ID != a2.ID || got[1].ID != a1.ID {
		t.Fatalf("alice's notes = %+v", got)
	}
	if got := s.List("alice", 1); len(got) != 1 || got[0].ID != a2.ID {
		t.Errorf("limit 1 = %+v", got)
	}
	if !a2.Created.After(a1.Created) || a1.ID == a2.ID {
		t.Errorf("ids/times not distinct: %+v %+v", a1, a2)
	}
	// bob cannot delete alice's note: it is not found for him.
	if err := s.Delete("bob", a1.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("bob deleting alice's note: %v", err)
	}
	if err := s.Delete("alice", a1.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete("alice", a1.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if got := s.List("bob", 0); len(got) != 1 || got[0].ID != b1.ID {
		t.Errorf("bob's notes = %+v", got)
	}
	if got := s.List("carol", 0); len(got) != 0 {
		t.Errorf("carol's notes = %+v", got)
	}
}

func TestStoreLimits(t *testing.T) {
	s := NewStore(nil)
	for i := range MaxNotesPerSubject {
		if _, err := s.Add("alice", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Add("alice", "one too many"); !errors.Is(err, ErrFull) {
		t.Errorf("note %d: %v", MaxNotesPerSubject+1, err)
	}
	for i := 1; i < MaxSubjects; i++ {
		if _, err := s.Add(fmt.Sprint("user-", i), "x"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Add("latecomer", "x"); !errors.Is(err, ErrTooManySubjects) {
		t.Errorf("subject %d: %v", MaxSubjects+1, err)
	}
	// A subject that deletes its last note frees its place.
	n := s.List("user-1", 0)[0]
	if err := s.Delete("user-1", n.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add("latecomer", "x"); err != nil {
		t.Errorf("after a place was freed: %v", err)
	}
}
