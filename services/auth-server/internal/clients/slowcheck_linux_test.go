package clients

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sys/unix"
)

// threadNice is the nice value of thread tid of this process
// (/proc/self/task/<tid>/stat, field 19), and false when the thread is
// gone.
func threadNice(t *testing.T, tid int) (int, bool) {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/stat", tid))
	// A thread that ends between the task listing and this read is gone
	// either way: ENOENT, or ESRCH once its task entry is being torn down.
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command (which may hold spaces) start at field 3.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	n, err := strconv.Atoi(f[19-3])
	if err != nil {
		t.Fatalf("nice of %d: %v", tid, err)
	}
	return n, true
}

// canRaisePriority reports whether this process may raise a thread's
// priority back once lowered (CAP_SYS_NICE, or RLIMIT_NICE): it lowers a
// locked thread's by one and tries. When it cannot, that thread ends
// (or, the main thread, is parked for good): its id is returned.
func canRaisePriority(t *testing.T) (bool, int) {
	done := make(chan bool)
	var tid int
	go func() {
		runtime.LockOSThread()
		tid = unix.Gettid()
		raw, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err != nil || unix.Setpriority(unix.PRIO_PROCESS, tid, 20-raw+1) != nil {
			t.Error("cannot lower a thread's priority")
			runtime.UnlockOSThread()
			done <- false
			return
		}
		ok := unix.Setpriority(unix.PRIO_PROCESS, tid, 20-raw) == nil
		if ok {
			runtime.UnlockOSThread()
		}
		done <- ok // exiting locked ends a thread left lowered
	}()
	ok := <-done
	if !ok {
		waitGone(t, tid)
	}
	return ok, tid
}

// waitGone waits until thread tid of this process has ended: a goroutine
// that exits locked to its thread ends it, but after the goroutine's last
// statement. The process's main thread cannot end: the runtime parks it
// for good instead (runtime.mexit), so it is not waited for.
func waitGone(t *testing.T, tid int) {
	t.Helper()
	if tid == os.Getpid() {
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, alive := threadNice(t, tid); !alive {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d still exists 30 s after its goroutine ended locked", tid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func canLowerPriority() bool { return true }

// noCapSysNiceEnv marks the re-run of TestSlowCheckNice without
// CAP_SYS_NICE (setpriv drops it from the bounding set).
const noCapSysNiceEnv = "TOLLGATE_TEST_NO_CAP_SYS_NICE"

// TestSlowCheckNice: a bcrypt comparison runs on a thread at
// SlowCheckNice (read from /proc while it runs), and only that thread: the
// process's other threads keep their nice value. Afterwards the thread
// has its priority back (CAP_SYS_NICE) or, when the kernel refuses to
// raise it (no CAP_SYS_NICE, as in most containers), no longer exists —
// the test runs itself again without CAP_SYS_NICE to check that case too.
func TestSlowCheckNice(t *testing.T) {
	// The process's priority: this goroutine's thread's. Threads already
	// at another one (lowered by an earlier test where the priority could
	// not be raised back, and parked by the runtime) are left out below.
	runtime.LockOSThread()
	base, _ := threadNice(t, unix.Gettid())
	runtime.UnlockOSThread()
	parked := map[int]bool{}
	tasks, _ := os.ReadDir("/proc/self/task")
	for _, e := range tasks {
		n, _ := strconv.Atoi(e.Name())
		if v, ok := threadNice(t, n); ok && v != base {
			parked[n] = true
		}
	}
	privileged, probe := canRaisePriority(t)
	if os.Getenv(noCapSysNiceEnv) == "1" && privileged {
		t.Fatal("re-run without CAP_SYS_NICE can still raise a thread's priority")
	}
	parked[probe] = parked[probe] || !privileged
	if base > 12 {
		t.Skipf("the process runs at nice %d: no room to lower a thread by 7", base)
	}
	h := newHasher(t, SecretHasherOptions{Key: testKey, SlowChecks: 1, SlowCheckNice: base + 7})
	stored, _ := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	for i, secret := range []string{"right", "wrong", "right"} {
		var tid, during int
		others := map[int]int{}
		h.onSlowCheck = func(id, nice int) {
			tid = id
			during, _ = threadNice(t, id)
			if nice != base+7 {
				t.Errorf("hook told nice %d, want %d", nice, base+7)
			}
			tasks, _ := os.ReadDir("/proc/self/task")
			for _, e := range tasks {
				if n, _ := strconv.Atoi(e.Name()); n != id && !parked[n] {
					if v, ok := threadNice(t, n); ok {
						others[n] = v
					}
				}
			}
		}
		// A new attempt each time: the right secret, once verified, is
		// cached under its client id.
		err := h.Compare(WithAttempt(context.Background(), &Attempt{ClientID: fmt.Sprint(i)}), stored, []byte(secret))
		if (secret == "right") != (err == nil) {
			t.Errorf("%s secret: %v", secret, err)
		}
		if tid == 0 {
			t.Fatal("the hook did not run")
		}
		if during != base+7 {
			t.Errorf("the comparison's thread ran at nice %d, want %d", during, base+7)
		}
		for n, v := range others {
			if v != base {
				t.Errorf("thread %d at nice %d during the comparison, want the process's %d", n, v, base)
			}
		}
		if !privileged {
			waitGone(t, tid) // fails when the thread outlives its goroutine
			parked[tid] = true
			continue
		}
		if after, alive := threadNice(t, tid); !alive || after != base {
			t.Errorf("with CAP_SYS_NICE: thread %d after the comparison: alive %v, nice %d; want alive at %d", tid, alive, after, base)
		}
	}
	s := h.SlowCheckStats()
	if s.Niced != 3 || s.Run != 3 {
		t.Errorf("stats %+v: want 3 comparisons, all niced", s)
	}
	if want := map[bool]int64{true: 0, false: 3}[privileged]; s.ThreadsEnded != want {
		t.Errorf("%d threads ended, want %d (privileged %v)", s.ThreadsEnded, want, privileged)
	}
	t.Logf("privileged %v: stats %+v", privileged, s)
	if !privileged || os.Getenv(noCapSysNiceEnv) != "" {
		return
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv not found: the case without CAP_SYS_NICE is not run")
	}
	cmd := exec.Command(setpriv, "--bounding-set", "-sys_nice", os.Args[0], "-test.run=^TestSlowCheckNice$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), noCapSysNiceEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "privileged false") {
		t.Errorf("without CAP_SYS_NICE: %v\n%s", err, out)
	}
}
