// Package notes is the example backend's capability: each signed-in user's
// notes, kept in memory, and the NotesService that serves them.
package notes

import (
	"crypto/rand"
	"errors"
	"sync"
	"time"
)

// Limits of the store. They bound the memory one caller, and all callers
// together, can take: at most MaxSubjects × MaxNotesPerSubject notes of at
// most MaxTextRunes characters each (about 200 MB of text at the worst).
const (
	// MaxTextRunes is the longest note, in Unicode code points.
	MaxTextRunes = 500
	// MaxNotesPerSubject is how many notes one user may keep.
	MaxNotesPerSubject = 100
	// MaxSubjects is how many users may hold notes at once.
	MaxSubjects = 1000
)

// Errors of the store.
var (
	// ErrNotFound: the subject has no note with that id (another
	// subject's note is not found either).
	ErrNotFound = errors.New("note not found")
	// ErrFull: the subject already holds MaxNotesPerSubject notes.
	ErrFull = errors.New("note limit reached")
	// ErrTooManySubjects: MaxSubjects users already hold notes.
	ErrTooManySubjects = errors.New("store is full")
)

// Note is one stored note.
type Note struct {
	ID      string
	Text    string
	Created time.Time
}

// Store keeps notes per subject (the sub claim of the caller's verified
// access token) in memory: they are lost when the process stops, which is
// what an example needs. It is safe for concurrent use.
type Store struct {
	mu        sync.Mutex
	bySubject map[string][]Note // oldest first
	now       func() time.Time
}

// NewStore returns an empty store; now is its clock (nil: time.Now).
func NewStore(now func() time.Time) *Store {
	if now == nil {
		now = time.Now
	}
	return &Store{bySubject: map[string][]Note{}, now: now}
}

// List returns subject's notes, newest first; limit 0 means all of them.
func (s *Store) List(subject string, limit int) []Note {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.bySubject[subject]
	if limit <= 0 || limit > len(all) {
		limit = len(all)
	}
	out := make([]Note, 0, limit)
	for i := len(all) - 1; i >= 0 && len(out) < limit; i-- {
		out = append(out, all[i])
	}
	return out
}

// Add stores a note with text (already validated) for subject and returns
// it. It fails with ErrFull or ErrTooManySubjects.
func (s *Store) Add(subject, text string) (Note, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all, known := s.bySubject[subject]
	switch {
	case !known && len(s.bySubject) >= MaxSubjects:
		return Note{}, ErrTooManySubjects
	case len(all) >= MaxNotesPerSubject:
		return Note{}, ErrFull
	}
	n := Note{ID: "note_" + rand.Text(), Text: text, Created: s.now().UTC()}
	s.bySubject[subject] = append(all, n)
	return n, nil
}

// Delete removes subject's note id, or fails with ErrNotFound.
func (s *Store) Delete(subject, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.bySubject[subject]
	for i, n := range all {
		if n.ID == id {
			all = append(all[:i:i], all[i+1:]...)
			if len(all) == 0 {
				delete(s.bySubject, subject) // an emptied list frees its place
			} else {
				s.bySubject[subject] = all
			}
			return nil
		}
	}
	return ErrNotFound
}
