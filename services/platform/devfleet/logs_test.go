package devfleet

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
)

// TestFlushHoldsWhatAComponentWroteBeforeAnswering: a line a component
// logged before it answered a request is in Out once Flush returns after
// the answer — the component writes its log file itself, no copy in the
// background to wait for — across a restart too; and once the fleet has
// stopped, Out holds every line, prefixed, and its log file
// (LogPath) every byte.
func TestFlushHoldsWhatAComponentWroteBeforeAnswering(t *testing.T) {
	if os.Getenv("DEVFLEET_LOG_CHILD") == "1" {
		// The component: serves on its inherited socket (HTTP_ADDR=fd:3),
		// logging "served <path>" on stderr before each answer.
		ln, err := net.FileListener(os.NewFile(3, "listener"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(os.Stderr, "served %s\n", r.URL.Path)
			_, _ = io.WriteString(w, "ok")
		}))
		os.Exit(1)
	}
	f, out := newTestFleet(t)
	t.Cleanup(f.Stop)
	c := Component{Name: "logger", Cmd: os.Args[0], Args: []string{"-test.run=^TestFlushHoldsWhatAComponentWroteBeforeAnswering$"}}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	const rounds = 200
	missed := 0
	for run := range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		f.mu.Lock()
		f.o.Listeners = map[int]net.Listener{port: ln}
		f.mu.Unlock()
		c.Env = map[string]string{"DEVFLEET_LOG_CHILD": "1", "HTTP_ADDR": addr(port)}
		if run == 0 {
			if _, err := f.spawn(context.Background(), c); err != nil {
				t.Fatal(err)
			}
		} else {
			f.procs[0].c = c // the new socket
			if err := f.StopComponent(c.Name); err != nil {
				t.Fatal(err)
			}
			if _, err := f.spawn(context.Background(), c); err != nil {
				t.Fatal(err)
			}
		}
		for i := range rounds {
			path := fmt.Sprintf("/run%d/%d", run, i)
			res, err := client.Get("http://" + addr(port) + path)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			f.Flush()
			if !strings.Contains(out.String(), "logger          | served "+path+"\n") {
				missed++
			}
		}
	}
	if missed > 0 {
		t.Errorf("%d of %d lines the component logged before answering were not in Out when Flush returned after the answer", missed, 2*rounds)
	}
	f.Stop()
	if n := strings.Count(out.String(), "logger          | served /run"); n != 2*rounds {
		t.Errorf("Out holds %d served lines after the stop, want %d:\n%s", n, 2*rounds, out)
	}
	b, err := os.ReadFile(LogPath(f.o.VarDir, c.Name))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "served /run"); n != 2*rounds {
		t.Errorf("%s holds %d served lines, want %d (a restart appends)", LogPath(f.o.VarDir, c.Name), n, 2*rounds)
	}
	if n := strings.Count(out.String(), "\n"); n != strings.Count(out.String(), "logger          | ") {
		t.Errorf("Out holds a line without the component's prefix:\n%s", out)
	}
}
