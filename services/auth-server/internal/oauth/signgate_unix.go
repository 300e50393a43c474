//go:build unix

package oauth

import (
	"os"
	"syscall"

	"golang.org/x/sync/semaphore"
)

// readPipe reads the hand-off's pipe once per wake-up, flushing the turns
// pending each time, and returns when the pipe fails.
//
// Through the pipe's raw descriptor (RawConn.Read) it waits for the
// poller first and reads after. An os.File.Read reads first and waits
// only when that read finds the pipe empty, which right after a batch it
// always does: a read(2) answered EAGAIN per batch, one more system call
// for every turn handed over (docs/benchmarks/auth-server-history.md,
// session 40 sys12). The poller reports the pipe edge-triggered (epoll's
// EPOLLET, kqueue's EV_CLEAR), so a byte written after the last read
// wakes the wait; a wake-up for a byte an earlier read already took
// finds the pipe empty (EAGAIN) and waits again.
func (h *pollerHandoff) readPipe(r *os.File) {
	rc, err := r.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 64)
	var spare []*semaphore.Weighted
	_ = rc.Read(func(fd uintptr) bool {
		for {
			n, err := syscall.Read(int(fd), buf)
			switch {
			case err == syscall.EINTR:
				continue
			case err == syscall.EAGAIN:
				return false // wait for the poller
			case err != nil || n == 0:
				return true // the pipe failed
			}
			spare = h.flush(spare)
			if n < len(buf) { // the pipe is empty now
				return false
			}
		}
	})
}
