package notes

import (
	"context"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	notesv1 "github.com/tollgate/tollgate/services/example-backend/gen/example/notes/v1"
	"github.com/tollgate/tollgate/services/platform/fault"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// MaxListLimit is the largest limit ListNotes takes.
const MaxListLimit = 100

// Service implements notesv1.NotesService on a Store. The caller is the
// subject of the access token that the capauth interceptor verified (and
// whose scopes it checked) before the call reaches a method.
type Service struct {
	notesv1.UnimplementedNotesServiceServer
	Store *Store
}

// caller returns the verified subject. Without one the interceptor chain
// is misconfigured: the call is refused rather than served to nobody.
func caller(ctx context.Context) (string, error) {
	c, ok := tokens.FromContext(ctx)
	if !ok || c.Subject == "" {
		return "", fault.Unauthenticated("no verified caller")
	}
	return c.Subject, nil
}

// ListNotes returns the caller's notes, newest first.
func (s *Service) ListNotes(ctx context.Context, req *notesv1.ListNotesRequest) (*notesv1.ListNotesResponse, error) {
	sub, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetLimit() > MaxListLimit {
		return nil, fault.InvalidArgument("limit must be 0 to %d", MaxListLimit)
	}
	resp := &notesv1.ListNotesResponse{Notes: []*notesv1.Note{}}
	for _, n := range s.Store.List(sub, int(req.GetLimit())) {
		resp.Notes = append(resp.Notes, toProto(n))
	}
	return resp, nil
}

// AddNote stores a note for the caller.
func (s *Service) AddNote(ctx context.Context, req *notesv1.AddNoteRequest) (*notesv1.AddNoteResponse, error) {
	sub, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	text := strings.TrimSpace(req.GetText())
	if err := checkText(text); err != nil {
		return nil, err
	}
	n, err := s.Store.Add(sub, text)
	switch {
	case errors.Is(err, ErrFull):
		// The caller can fix this (delete a note): InvalidArgument, whose
		// text both connectors show (MCP tool error, Actions 400).
		// ResourceExhausted would read as a rate limit to them.
		return nil, fault.InvalidArgument("you already have %d notes: delete one first", MaxNotesPerSubject)
	case errors.Is(err, ErrTooManySubjects):
		return nil, fault.ResourceExhausted("the notes store is full")
	case err != nil:
		return nil, err
	}
	return &notesv1.AddNoteResponse{Note: toProto(n)}, nil
}

// DeleteNote deletes one of the caller's notes.
func (s *Service) DeleteNote(ctx context.Context, req *notesv1.DeleteNoteRequest) (*notesv1.DeleteNoteResponse, error) {
	sub, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetNoteId() == "" {
		return nil, fault.InvalidArgument("note_id is required")
	}
	if err := s.Store.Delete(sub, req.GetNoteId()); errors.Is(err, ErrNotFound) {
		return nil, fault.NotFound("no note %q", req.GetNoteId())
	} else if err != nil {
		return nil, err
	}
	return &notesv1.DeleteNoteResponse{NoteId: req.GetNoteId()}, nil
}

// checkText accepts 1 to MaxTextRunes characters, without control
// characters other than newline and tab.
func checkText(text string) error {
	switch n := utf8.RuneCountInString(text); {
	case n == 0:
		return fault.InvalidArgument("text is required (not only spaces)")
	case n > MaxTextRunes:
		return fault.InvalidArgument("text is %d characters; at most %d", n, MaxTextRunes)
	}
	for _, r := range text {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return fault.InvalidArgument("text contains a control character (U+%04X)", r)
		}
	}
	return nil
}

func toProto(n Note) *notesv1.Note {
	return &notesv1.Note{Id: n.ID, Text: n.Text, CreatedAt: timestamppb.New(n.Created)}
}
