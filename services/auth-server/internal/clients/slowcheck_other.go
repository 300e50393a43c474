//go:build !linux

package clients

// lowPriority runs f at the process's priority: outside Linux the nice
// value of setpriority(2) belongs to the whole process, so no single
// thread can be lowered.
func lowPriority(_ int, f func(tid, nice int)) bool {
	f(0, 0)
	return true
}
