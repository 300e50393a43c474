package conformance

import (
	"errors"
	"net"
	"strconv"
	"syscall"
	"testing"
)

// A callback port another process took between freePort and the child's
// bind is run again on a new port (onFreePort). Here the "child" binds as
// the suite does, and the port it is first given is held by another
// socket: the bind fails with EADDRINUSE, and the second run, on a new
// port, binds. Broken on purpose (one run, as before this test) the run
// on the taken port is all there is.
func TestOnFreePortRetriesATakenPort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	first := taken.Addr().(*net.TCPAddr).Port
	var runs []int
	bound := onFreePort(t, first, freePort, func(port int) bool {
		runs = append(runs, port)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if errors.Is(err, syscall.EADDRINUSE) {
			return true
		} else if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		return false
	})
	if len(runs) != 2 || runs[0] != first || bound == first || runs[1] != bound {
		t.Errorf("runs on ports %v, last %d; want the taken port %d, then another", runs, bound, first)
	}
	if !portInUse("Error: listen EADDRINUSE: address already in use 127.0.0.1:" + strconv.Itoa(first)) {
		t.Error("Node's bind error is not recognized")
	}
}
