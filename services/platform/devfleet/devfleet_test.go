package devfleet

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/testharness"
)

func newTestFleet(t *testing.T) (*Fleet, *testharness.SyncBuffer) {
	out := &testharness.SyncBuffer{}
	return &Fleet{o: Options{Out: out, VarDir: t.TempDir()}, exited: make(chan string, 4)}, out
}

func TestACrashIsReportedByName(t *testing.T) {
	f, out := newTestFleet(t)
	if _, err := f.spawn(context.Background(), Component{Name: "boom", Cmd: "/bin/sh", Args: []string{"-c", "echo starting; exit 3"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-f.Exited():
		if msg != "boom exited unexpectedly (exit status 3)" {
			t.Errorf("message = %q", msg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("crash not reported")
	}
	if !strings.Contains(out.String(), "boom            | starting") {
		t.Errorf("output not prefixed:\n%s", out)
	}
}

func TestStopTerminatesEveryComponent(t *testing.T) {
	f, _ := newTestFleet(t)
	for _, name := range []string{"a", "b"} {
		if _, err := f.spawn(context.Background(), Component{Name: name, Cmd: "/bin/sh", Args: []string{"-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"}}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	f.Stop()
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("stop took %s", d)
	}
	for _, p := range f.procs {
		select {
		case <-p.done:
		default:
			t.Errorf("%s still running", p.c.Name)
		}
	}
}

func TestReadinessFailureNamesTheComponent(t *testing.T) {
	f, _ := newTestFleet(t)
	pr, err := f.spawn(context.Background(), Component{Name: "early-exit", Cmd: "/bin/sh", Args: []string{"-c", "exit 1"}, ReadyAddr: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	err = f.waitReady(context.Background(), pr, 10*time.Second)
	if err == nil || !strings.Contains(err.Error(), "early-exit exited during start-up (exit status 1)") {
		t.Errorf("err = %v", err)
	}
}

func TestMissingRedisSaysHowToInstall(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := EnsureRedis(&testharness.SyncBuffer{}, false)
	if err == nil || !strings.Contains(err.Error(), "apt-get install -y redis-server") {
		t.Errorf("err = %v", err)
	}
}
