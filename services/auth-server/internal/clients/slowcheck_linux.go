package clients

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// lowPriority runs f on the calling goroutine's thread, locked to it, at
// nice value nice (setpriority(2) on the thread id: on Linux the nice
// value belongs to each thread, not to the process), passing f the thread
// id and the nice value f runs at. A thread already at nice or lower
// priority, or one the kernel refuses to lower, runs f as it is.
//
// Afterwards the thread's nice value is set back and the thread unlocked.
// Raising a thread's priority back needs CAP_SYS_NICE (or an RLIMIT_NICE
// that allows it), which a container usually lacks: then the thread stays
// locked and lowPriority reports false; the caller's goroutine must end
// without unlocking it, so that the runtime ends the thread rather than
// give a low-priority thread to other goroutines. (The runtime makes new
// threads from its template thread while a locked thread runs, so none
// inherits the lowered priority.)
func lowPriority(nice int, f func(tid, nice int)) (restored bool) {
	runtime.LockOSThread()
	tid := unix.Gettid()
	// The raw system call returns 20 - nice (getpriority(2), C library/kernel differences).
	raw, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	old := 20 - raw
	if err != nil || old >= nice || unix.Setpriority(unix.PRIO_PROCESS, tid, nice) != nil {
		runtime.UnlockOSThread()
		f(tid, 0)
		return true
	}
	f(tid, nice)
	if unix.Setpriority(unix.PRIO_PROCESS, tid, old) != nil {
		return false
	}
	runtime.UnlockOSThread()
	return true
}
