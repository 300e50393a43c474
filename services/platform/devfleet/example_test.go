package devfleet

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

func envOf(t *testing.T, cs []Component, name string) map[string]string {
	t.Helper()
	for _, c := range cs {
		if c.Name == name {
			return c.Env
		}
	}
	t.Fatalf("no component %s", name)
	return nil
}

func TestExampleBackendJoinsCapabilityBackends(t *testing.T) {
	t.Setenv("CAPABILITY_BACKENDS", "")
	connectors := []string{"auth-server", "mcp-gateway", "actions-api"}

	// Default: the services' own default (capability-core), no example.
	cs := Components(Options{Ports: DefaultPorts()}, t.TempDir(), "redis-server")
	for _, c := range cs {
		if c.Name == ExampleBackendName {
			t.Fatal("the example backend runs without EXAMPLE_BACKEND")
		}
		if v, ok := c.Env["CAPABILITY_BACKENDS"]; ok {
			t.Errorf("%s: CAPABILITY_BACKENDS=%q without a setting", c.Name, v)
		}
	}

	// EXAMPLE_BACKEND=1: started after capability-core, before the
	// connectors, and listed after capability-core.
	cs = Components(Options{Ports: DefaultPorts(), ExampleBackend: true}, t.TempDir(), "redis-server")
	var order []string
	for _, c := range cs {
		order = append(order, c.Name)
	}
	if got := strings.Join(order, " "); got != "redis dev-idp auth-server capability-core example-backend mcp-gateway actions-api" {
		t.Errorf("start order = %s", got)
	}
	want := "capability-core=127.0.0.1:4201,example-backend=127.0.0.1:4601"
	for _, name := range connectors {
		if got := envOf(t, cs, name)["CAPABILITY_BACKENDS"]; got != want {
			t.Errorf("%s: CAPABILITY_BACKENDS=%q, want %q", name, got, want)
		}
	}
	ex := envOf(t, cs, ExampleBackendName)
	if ex["GRPC_ADDR"] != "127.0.0.1:4601" || ex["ADMIN_ADDR"] != "127.0.0.1:4602" || ex["AUTH_GRPC_ADDR"] != "127.0.0.1:4101" || ex["MCP_RESOURCE_URL"] == "" {
		t.Errorf("example-backend env = %v", ex)
	}

	// A list of one's own is passed through, with the example appended
	// when it runs (from Env or from the environment).
	mine := "capability-core=127.0.0.1:4201,billing=127.0.0.1:7001"
	cs = Components(Options{Ports: DefaultPorts(), Env: map[string]string{"CAPABILITY_BACKENDS": mine}}, t.TempDir(), "")
	for _, name := range connectors {
		if got := envOf(t, cs, name)["CAPABILITY_BACKENDS"]; got != mine {
			t.Errorf("%s: CAPABILITY_BACKENDS=%q, want %q", name, got, mine)
		}
	}
	t.Setenv("CAPABILITY_BACKENDS", mine)
	cs = Components(Options{Ports: DefaultPorts(), ExampleBackend: true}, t.TempDir(), "")
	if got := envOf(t, cs, "mcp-gateway")["CAPABILITY_BACKENDS"]; got != mine+",example-backend=127.0.0.1:4601" {
		t.Errorf("environment list with the example: %q", got)
	}
	// A list that already names the example is left alone.
	t.Setenv("CAPABILITY_BACKENDS", "example-backend=10.0.0.1:9090")
	if got := (Options{Ports: DefaultPorts(), ExampleBackend: true}).CapabilityBackends(); got != "example-backend=10.0.0.1:9090" {
		t.Errorf("list naming the example: %q", got)
	}
}

func TestExampleBackendSetting(t *testing.T) {
	env := map[string]string{}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	for v, want := range map[string]bool{"": false, "1": true, "true": true, "0": false, "false": false} {
		env["EXAMPLE_BACKEND"] = v
		s, err := SettingsFromEnv(lookup)
		if err != nil || s.ExampleBackend != want {
			t.Errorf("EXAMPLE_BACKEND=%q: %v, %v", v, s.ExampleBackend, err)
		}
	}
	env["EXAMPLE_BACKEND"] = "yes please"
	env["PUBLIC_URL"] = "ftp://x"
	_, err := SettingsFromEnv(lookup)
	if err == nil || !strings.Contains(err.Error(), `EXAMPLE_BACKEND: "yes please" is not 1, 0, true or false`) || !strings.Contains(err.Error(), "PUBLIC_URL") {
		t.Errorf("err = %v", err)
	}
}

func TestStopAndRestartOneComponent(t *testing.T) {
	f, out := newTestFleet(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := Component{Name: "backend", Cmd: "/bin/sh", ReadyAddr: ln.Addr().String(),
		Args: []string{"-c", "echo up; trap 'exit 0' TERM; while :; do sleep 0.1; done"}}
	first, err := f.spawn(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.RestartComponent(context.Background(), "backend"); err == nil || !strings.Contains(err.Error(), "backend is running") {
		t.Errorf("restart while running: %v", err)
	}
	if err := f.StopComponent("backend"); err != nil {
		t.Fatal(err)
	}
	if err := f.StopComponent("nope"); err == nil || !strings.Contains(err.Error(), `no component "nope"`) {
		t.Errorf("stop unknown: %v", err)
	}
	if err := f.RestartComponent(context.Background(), "backend"); err != nil {
		t.Fatal(err)
	}
	select {
	case msg := <-f.Exited():
		t.Errorf("a deliberate stop was reported: %s", msg)
	default:
	}
	next := f.running("backend")
	if next == first || next.stopping.Load() {
		t.Fatal("no new process after the restart")
	}
	select {
	case <-next.done:
		t.Fatalf("restarted component exited:\n%s", out)
	default:
	}
	f.Stop()
	<-next.done
}

func TestBannerPrintsTheBackends(t *testing.T) {
	t.Setenv("CAPABILITY_BACKENDS", "")
	var out strings.Builder
	f := &Fleet{o: Options{Ports: DefaultPorts(), ExampleBackend: true}, Origin: "http://localhost:4000", Local: "http://localhost:4000"}
	Banner(&out, f, ".", t.TempDir(), DefaultVarDir)
	for _, want := range []string{
		"CAPABILITY_BACKENDS=capability-core=127.0.0.1:4201,example-backend=127.0.0.1:4601",
		"EXAMPLE_BACKEND=1  — example-backend at 127.0.0.1:4601: tools notes.list, notes.add, notes.delete",
		`make token SCOPE="openid notes.read notes.write"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	Banner(&out, &Fleet{o: Options{Ports: DefaultPorts()}, Origin: "http://localhost:4000", Local: "http://localhost:4000"}, ".", t.TempDir(), DefaultVarDir)
	if !strings.Contains(out.String(), "CAPABILITY_BACKENDS unset (capability-core=127.0.0.1:4201)") || !strings.Contains(out.String(), "EXAMPLE_BACKEND=1 also runs the notes example") {
		t.Errorf("banner without the example:\n%s", out.String())
	}
	for _, varFlag := range []string{DefaultVarDir, "./var", "var/"} {
		out.Reset()
		Banner(&out, &Fleet{o: Options{Ports: DefaultPorts()}, Origin: "http://localhost:4000", Local: "http://localhost:4000"}, ".", t.TempDir(), varFlag)
		if !strings.Contains(out.String(), "Access token for curl: make token ") {
			t.Errorf("make dev's banner (-var %s) does not offer make token:\n%s", varFlag, out.String())
		}
	}
}

// TestBannerOfASecondFleetNamesItsVarDir: a fleet started with its own -var
// (docs/development.md, a second fleet beside make dev) offers token
// commands that read its state directory; make token reads var/ and signed
// in to make dev's fleet instead (brk43).
func TestBannerOfASecondFleetNamesItsVarDir(t *testing.T) {
	t.Setenv("CAPABILITY_BACKENDS", "")
	var out strings.Builder
	f := &Fleet{o: Options{Ports: DefaultPorts(), ExampleBackend: true}, Origin: "http://localhost:39637", Local: "http://localhost:39637"}
	Banner(&out, f, ".", t.TempDir(), "var/second")
	for _, want := range []string{
		"Access token for curl: var/bin/tollgate-dev token -var var/second --client local-test --resource mcp|actions",
		`try: var/bin/tollgate-dev token -var var/second --scope "openid notes.read notes.write"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("second fleet's banner lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "make token") && !strings.Contains(out.String(), "make token signs in to make dev's fleet") {
		t.Errorf("second fleet's banner offers make token, which reads var/ (make dev's fleet):\n%s", out.String())
	}
}

// TestBannerOfAFleetElsewhereNamesItsRoot: a fleet started with -root
// other than "." (tollgate-dev run from another directory) prints token
// commands that name the root, absolute and quoted for the shell, so they
// work from any directory: make -C <root> token, and <root>/var/bin/
// tollgate-dev token -root <root> (with its -var for a second fleet).
// Before, they read as if run from the root: make token found no
// Makefile, var/bin/tollgate-dev no binary.
func TestBannerOfAFleetElsewhereNamesItsRoot(t *testing.T) {
	t.Setenv("CAPABILITY_BACKENDS", "")
	parent := t.TempDir()
	root := filepath.Join(parent, "my clone")
	quoted := "'" + root + "'"
	bin := "'" + filepath.Join(root, "var", "bin", "tollgate-dev") + "'"
	fleet := func() *Fleet {
		return &Fleet{o: Options{Ports: DefaultPorts(), ExampleBackend: true}, Origin: "http://localhost:4000", Local: "http://localhost:4000"}
	}
	var out strings.Builder
	Banner(&out, fleet(), root, t.TempDir(), DefaultVarDir)
	for _, want := range []string{
		"Access token for curl: make -C " + quoted + " token  (or " + bin + " token -root " + quoted + " --client local-test --resource mcp|actions)",
		"try: make -C " + quoted + ` token SCOPE="openid notes.read notes.write"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("banner of make dev's var/ under -root %q lacks %q:\n%s", root, want, out.String())
		}
	}
	out.Reset()
	Banner(&out, fleet(), root, t.TempDir(), "var/second")
	want := "Access token for curl: " + bin + " token -root " + quoted + " -var var/second --client local-test --resource mcp|actions"
	if !strings.Contains(out.String(), want) {
		t.Errorf("second fleet's banner under -root %q lacks %q:\n%s", root, want, out.String())
	}
	// A relative -root is made absolute (the banner's reader may be in
	// another directory than tollgate-dev was started from).
	t.Chdir(parent)
	out.Reset()
	Banner(&out, fleet(), "my clone", t.TempDir(), DefaultVarDir)
	if want := "make -C " + quoted + " token"; !strings.Contains(out.String(), want) {
		t.Errorf("banner under -root %q (relative) lacks %q:\n%s", "my clone", want, out.String())
	}
	for _, bad := range []string{"Access token for curl: make token", "(or var/bin/tollgate-dev"} {
		if strings.Contains(out.String(), bad) {
			t.Errorf("banner under -root %q prints %q, which works only from the root:\n%s", "my clone", bad, out.String())
		}
	}
}
