package devfleet

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/testharness"
)

// TestComponentsDieWithTheFleet: a tollgate-dev that dies without stopping
// the fleet (SIGKILL here) takes its components with it. Each runs in a
// process group of its own, so without Pdeathsig they outlived it and held
// the fleet's ports until found and killed by hand.
func TestComponentsDieWithTheFleet(t *testing.T) {
	if os.Getenv("DEVFLEET_DIE_WITH_FLEET_HELPER") == "1" {
		// The helper: a fleet with one component, killed by the test.
		f := &Fleet{o: Options{Out: io.Discard, VarDir: t.TempDir()}, exited: make(chan string, 4)}
		pr, err := f.spawn(context.Background(), Component{Name: "sleeper", Cmd: "/bin/sh", Args: []string{"-c", "exec sleep 300"}})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("pid", pr.cmd.Process.Pid)
		select {}
	}
	helper := exec.Command(os.Args[0], "-test.run=^TestComponentsDieWithTheFleet$", "-test.count=1")
	helper.Env = append(os.Environ(), "DEVFLEET_DIE_WITH_FLEET_HELPER=1")
	// The helper waits forever (until its own -timeout): it goes with this
	// test binary if that dies without its cleanups (a -timeout panic, a
	// kill), as the fleet's components go with tollgate-dev.
	testharness.DieWithParent(helper)
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = helper.Process.Kill(); _ = helper.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v (%q)", err, line)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "pid ")))
	if err != nil {
		t.Fatalf("helper said %q", line)
	}
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	if !alive(pid) {
		t.Fatalf("component %d not running before the kill", pid)
	}
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("component %d still running 10s after tollgate-dev was killed", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie waiting for its new parent to
// reap it has exited).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
