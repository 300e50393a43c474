package testharness_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate/tollgate/services/platform/app"
	"github.com/tollgate/tollgate/services/platform/testharness"
)

// childEnv makes this test binary a tiny server (TestMain): it serves on
// app.Listen(CHILD_ADDR) and answers every request with its process id,
// after logging "served <path>" on stderr.
const childEnv = "TESTHARNESS_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		ln, err := app.Listen(context.Background(), os.Getenv("CHILD_ADDR"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(os.Stderr, "served %s\n", r.URL.Path)
			_, _ = io.WriteString(w, strconv.Itoa(os.Getpid()))
		}))
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// pidAt asks the child server at addr for its process id.
func pidAt(t *testing.T, addr string) (int, error) { return pidAtPath(t, addr, "/") }

// pidAtPath is pidAt with a request path.
func pidAtPath(t *testing.T, addr, path string) (int, error) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return strconv.Atoi(string(b))
}

// TestProcessGetsItsListener: the harness binds the child's port itself and
// hands the socket over (fd:N), so the address is the child's from the
// start; while stopped the port refuses connections (held by the harness);
// a restart serves on the same address again.
func TestProcessGetsItsListener(t *testing.T) {
	p := testharness.StartProcess(t, os.Args[0], map[string]string{childEnv: "1"}, "CHILD_ADDR")
	addr := p.Addr("CHILD_ADDR")
	pid, err := pidAt(t, addr)
	if err != nil || pid != p.Pid() {
		t.Fatalf("%s answered pid %d (%v), want the child's %d", addr, pid, err, p.Pid())
	}

	p.Stop()
	if _, err := pidAt(t, addr); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("stopped child's address: %v, want connection refused", err)
	}
	p.Start()
	pid2, err := pidAt(t, addr)
	if err != nil || pid2 != p.Pid() || pid2 == pid {
		t.Fatalf("after the restart %s answered pid %d (%v), want the new child's %d", addr, pid2, err, p.Pid())
	}
}

// TestProcessLogsHoldWhatTheChildWroteBeforeAnswering: a line the child
// logged before it answered is in Logs as soon as the answer arrived —
// no copy in the background to wait for — across a restart too, and
// Logs keeps everything once the child is stopped.
func TestProcessLogsHoldWhatTheChildWroteBeforeAnswering(t *testing.T) {
	p := testharness.StartProcess(t, os.Args[0], map[string]string{childEnv: "1"}, "CHILD_ADDR")
	addr := p.Addr("CHILD_ADDR")
	const rounds = 200
	missed := 0
	for run := range 2 {
		for i := range rounds {
			path := fmt.Sprintf("/run%d/%d", run, i)
			if _, err := pidAtPath(t, addr, path); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(p.Logs.String(), "served "+path+"\n") {
				missed++
			}
		}
		p.Stop()
		p.Start()
	}
	if missed > 0 {
		t.Errorf("%d of %d lines the child logged before answering were not in Logs when the answer came", missed, 2*rounds)
	}
	p.Stop()
	if n := strings.Count(p.Logs.String(), "served /run"); n != 2*rounds {
		t.Errorf("Logs holds %d served lines after the stop, want %d:\n%s", n, 2*rounds, p.Logs)
	}
}

// TestRunServiceTakesTheHandedListener: a service run in-process serves on
// the listener the test bound before, not on a port of its own.
func TestRunServiceTakesTheHandedListener(t *testing.T) {
	ln := testharness.Listener(t)
	svc := testharness.RunService(t, func(ctx context.Context, getenv func(string) string, _ io.Writer, onListen app.Listening) error {
		h, err := app.NewHTTP(ctx, "http", getenv("HTTP_ADDR"), http.NotFoundHandler())
		if err != nil {
			return err
		}
		onListen(map[string]net.Addr{"http": h.Addr()})
		go func() { <-ctx.Done(); _ = h.Shutdown(context.Background()) }()
		return h.Serve()
	}, map[string]string{"HTTP_ADDR": ln.Addr().String()}, ln)
	if got := svc.Addr("http"); got != ln.Addr().String() {
		t.Errorf("service serves on %s, want the handed listener's %s", got, ln.Addr())
	}
	res, err := http.Get("http://" + svc.Addr("http") + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("GET: %d, want the service's 404", res.StatusCode)
	}
}

// TestClosedAddrRefuses: nothing listens at ClosedAddr and nothing can.
func TestClosedAddrRefuses(t *testing.T) {
	addr := testharness.ClosedAddr(t)
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Errorf("dial %s: %v, want connection refused", addr, err)
	}
	if ln, err := net.Listen("tcp", addr); !errors.Is(err, syscall.EADDRINUSE) {
		if ln != nil {
			ln.Close()
		}
		t.Errorf("listen on %s: %v, want address in use", addr, err)
	}
}
