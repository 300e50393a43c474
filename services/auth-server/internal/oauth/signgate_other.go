//go:build !unix

package oauth

import (
	"os"

	"golang.org/x/sync/semaphore"
)

// readPipe reads the hand-off's pipe, flushing the turns pending at each
// read, and returns when the pipe fails (signgate_unix.go reads it once
// per wake-up).
func (h *pollerHandoff) readPipe(r *os.File) {
	buf := make([]byte, 64)
	var spare []*semaphore.Weighted
	for {
		if _, err := r.Read(buf); err != nil {
			return
		}
		spare = h.flush(spare)
	}
}
