package registry_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
	_ "github.com/tollgate/tollgate/proto/gen/tollgate/testing/v1" // linked: must publish nothing
	"github.com/tollgate/tollgate/services/platform/grpcx"
	"github.com/tollgate/tollgate/services/platform/registry"
	"github.com/tollgate/tollgate/services/platform/registry/registrytest"
	"github.com/tollgate/tollgate/services/platform/testharness"
	"github.com/tollgate/tollgate/services/platform/tokens"
)

// notes is an annotated service: a read tool and action, a consequential
// write, each with its own scope.
func notes(pkg string) registrytest.Service {
	return registrytest.Service{
		Package: pkg, Name: "NotesService",
		Scopes: []*optionsv1.Scope{
			{Name: pkg + ".read", Description: "Read your notes"},
			{Name: pkg + ".write", Description: "Change your notes"},
		},
		Methods: []registrytest.Method{
			{Name: "ListNotes",
				Tool: &optionsv1.McpTool{Name: pkg + ".list", Title: "List notes", Description: "Lists notes.",
					RequiredScopes: []string{pkg + ".read"}, Annotations: &optionsv1.ToolAnnotations{ReadOnly: proto.Bool(true)}},
				Action: &optionsv1.ActionsOperation{Method: "GET", Path: "/actions/" + pkg, OperationId: pkg + "List", Summary: "List notes",
					RequiredScopes: []string{pkg + ".read"}}},
			{Name: "AddNote",
				Tool: &optionsv1.McpTool{Name: pkg + ".add", Title: "Add a note", Description: "Adds a note.",
					RequiredScopes: []string{pkg + ".write"}},
				Action: &optionsv1.ActionsOperation{Method: "POST", Path: "/actions/" + pkg, OperationId: pkg + "Add", Summary: "Add a note",
					RequiredScopes: []string{pkg + ".write"}, Consequential: true}},
		},
	}
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer = testharness.SyncBuffer

type harness struct {
	d   *registry.Discovery
	log *syncBuffer
	reg *prometheus.Registry
}

func discover(t *testing.T, backends ...*registrytest.Backend) *harness {
	t.Helper()
	h := &harness{log: &syncBuffer{}, reg: prometheus.NewRegistry()}
	var list []registry.Backend
	for _, b := range backends {
		conn, err := grpcx.Dial(b.Addr, grpcx.ClientOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		list = append(list, registry.Backend{Name: b.Label, Target: b.Addr, Conn: conn})
	}
	d, err := registry.NewDiscovery(registry.DiscoveryOptions{
		Backends: list, Metrics: h.reg,
		Log: slog.New(slog.NewTextHandler(h.log, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	return h
}

// metric is the value of name{backend=backend}; 0 when absent.
func (h *harness) metric(t *testing.T, name, backend string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "backend" && l.GetValue() == backend {
					if g := m.GetGauge(); g != nil {
						return g.GetValue()
					}
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func toolNames(r *registry.Registry) string {
	var out []string
	for _, t := range r.Tools() {
		out = append(out, t.Name)
	}
	return strings.Join(out, " ")
}

func TestDiscoveryReadsAnnotatedServicesAndRoutesCalls(t *testing.T) {
	a := registrytest.Start(t, "alpha", []registrytest.Service{notes("notes")})
	b := registrytest.Start(t, "beta", []registrytest.Service{notes("todo")})
	h := discover(t, a, b)
	reg := h.d.Refresh(context.Background())

	// Only what the backends serve: testing/v1's EchoService is linked
	// into this test binary and must not appear.
	if got := toolNames(reg); got != "notes.add notes.list todo.add todo.list" {
		t.Fatalf("tools = %q", got)
	}
	if _, ok := reg.Tool("testing.echo"); ok {
		t.Fatal("a linked package published its tool")
	}
	if got := strings.Join(reg.ScopeNames(), " "); got != "openid profile email offline_access notes.read notes.write todo.read todo.write" {
		t.Errorf("scopes = %q", got)
	}
	if n := len(reg.Actions()); n != 4 {
		t.Errorf("%d actions", n)
	}
	add, _ := reg.Tool("todo.add")
	if add.Capability.Backend != "beta" || add.Capability.FullMethod != "/todo.NotesService/AddNote" {
		t.Errorf("todo.add routed to %q %s", add.Capability.Backend, add.Capability.FullMethod)
	}
	if !add.Capability.Action.Consequential || add.Capability.Action.RequiredScopes[0] != "todo.write" {
		t.Errorf("action options lost: %+v", add.Capability.Action)
	}
	if err := h.d.Conns().Check(reg); err != nil {
		t.Fatal(err)
	}

	// A call decoded from JSON goes to the backend that serves it, with
	// the caller's token in its metadata.
	conn, _ := h.d.Conns().For(add.Capability)
	in, err := add.Capability.DecodeJSON([]byte(`{"text":"milk"}`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := add.Capability.Invoke(tokens.WithToken(context.Background(), "tok-123"), conn, in)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := registry.MarshalOutput(out)
	if string(js) != `{"text":"milk","backend":"beta"}` {
		t.Errorf("output = %s", js)
	}
	calls := b.Calls()
	if len(calls) != 1 || calls[0].Method != "/todo.NotesService/AddNote" || calls[0].MD.Get("authorization")[0] != "Bearer tok-123" {
		t.Errorf("calls = %+v", calls)
	}
	if len(a.Calls()) != 0 {
		t.Errorf("alpha got calls: %+v", a.Calls())
	}
	for _, want := range []string{`msg="capability backend discovered" backend=alpha`, `msg="capability registry updated" tools=4`} {
		if !strings.Contains(h.log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, h.log)
		}
	}
	if v := h.metric(t, "tollgate_capability_backend_up", "beta"); v != 1 {
		t.Errorf("beta up = %v", v)
	}
	if v := h.metric(t, "tollgate_capability_backend_services", "alpha"); v != 1 {
		t.Errorf("alpha services = %v", v)
	}

	// Nothing changed: the same registry stays installed.
	if again := h.d.Refresh(context.Background()); again != reg {
		t.Error("an unchanged refresh installed a new registry")
	}
}

func TestDiscoveryBackendDownAtStartJoinsLater(t *testing.T) {
	a := registrytest.Start(t, "alpha", []registrytest.Service{notes("notes")})
	b := registrytest.Start(t, "beta", []registrytest.Service{notes("todo")})
	b.Stop()
	h := discover(t, b, a) // the down one first: it does not hold the other back
	var installed []string
	h.d.OnChange(func(r *registry.Registry) { installed = append(installed, toolNames(r)) })

	reg := h.d.Refresh(context.Background())
	if got := toolNames(reg); got != "notes.add notes.list" {
		t.Fatalf("tools with beta down = %q", got)
	}
	if !strings.Contains(h.log.String(), `msg="capability backend unavailable" backend=beta`) {
		t.Errorf("log:\n%s", h.log)
	}
	if v := h.metric(t, "tollgate_capability_backend_up", "beta"); v != 0 {
		t.Errorf("beta up = %v", v)
	}

	b.Restart(t)
	reg = h.d.Refresh(context.Background())
	if got := toolNames(reg); got != "notes.add notes.list todo.add todo.list" {
		t.Fatalf("tools after beta came up = %q", got)
	}
	if len(installed) != 2 || installed[1] != toolNames(reg) {
		t.Errorf("OnChange saw %q", installed)
	}

	// Down again: its tools stay (calls fail cleanly with Unavailable),
	// so a restart does not make them flap.
	b.Stop()
	reg = h.d.Refresh(context.Background())
	if got := toolNames(reg); got != "notes.add notes.list todo.add todo.list" {
		t.Fatalf("tools with beta down again = %q", got)
	}
	list, _ := reg.Tool("todo.list")
	conn, _ := h.d.Conns().For(list.Capability)
	in, _ := list.Capability.DecodeJSON(nil)
	if _, err := list.Capability.Invoke(context.Background(), conn, in); status.Code(err) != codes.Unavailable {
		t.Errorf("call to a stopped backend: %v", err)
	}
}

func TestDiscoveryRefusesTheLaterOfTwoConflictingBackends(t *testing.T) {
	// beta declares alpha's service again; gamma a different service
	// with a tool of the same name; delta a service declaring alpha's scope.
	clash := notes("other")
	clash.Methods[0].Tool.Name = "notes.list"
	scopeThief := registrytest.Service{Package: "thief", Name: "S", Scopes: []*optionsv1.Scope{{Name: "notes.read", Description: "Mine"}}}
	a := registrytest.Start(t, "alpha", []registrytest.Service{notes("notes")})
	b := registrytest.Start(t, "beta", []registrytest.Service{notes("notes"), notes("todo")})
	c := registrytest.Start(t, "gamma", []registrytest.Service{clash})
	d := registrytest.Start(t, "delta", []registrytest.Service{scopeThief})
	h := discover(t, a, b, c, d)
	reg := h.d.Refresh(context.Background())
	if got := toolNames(reg); got != "notes.add notes.list todo.add todo.list" {
		t.Fatalf("tools = %q", got)
	}
	list, _ := reg.Tool("notes.list")
	if list.Capability.Backend != "alpha" {
		t.Errorf("notes.list served by %q, want the earlier backend", list.Capability.Backend)
	}
	todo, _ := reg.Tool("todo.list")
	if todo.Capability.Backend != "beta" {
		t.Errorf("beta's other service: %q", todo.Capability.Backend)
	}
	log := h.log.String()
	for _, want := range []string{
		`level=ERROR msg="capability service refused" backend=beta service=notes.NotesService reason="service already served by backend alpha" winner=alpha`,
		`msg="capability service refused" backend=gamma service=other.NotesService reason="other.NotesService.ListNotes: tool \"notes.list\" already declared by notes.NotesService.ListNotes" winner=alpha`,
		`msg="capability service refused" backend=delta service=thief.S reason="thief.S: scope \"notes.read\" already declared by notes.NotesService" winner=alpha`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks\n%s\n---\n%s", want, log)
		}
	}
	for _, n := range []string{"beta", "gamma", "delta"} {
		if v := h.metric(t, "tollgate_capability_conflicts_total", n); v != 1 {
			t.Errorf("conflicts{%s} = %v", n, v)
		}
	}
	// The refusal is logged and counted once, not on every refresh.
	a.Serve(t, notes("notes"), registrytest.Service{Package: "extra", Name: "E"})
	h.d.Refresh(context.Background())
	if v := h.metric(t, "tollgate_capability_conflicts_total", "beta"); v != 1 {
		t.Errorf("conflicts{beta} after another refresh = %v", v)
	}
	if n := strings.Count(h.log.String(), "backend=beta service=notes.NotesService"); n != 1 {
		t.Errorf("refusal logged %d times", n)
	}
}

func TestDiscoveryScopesAcrossBackendsAndUndeclaredScopes(t *testing.T) {
	// beta's tool needs alpha's scope: accepted. gamma's needs a scope
	// nobody declares: refused, the others stay.
	borrow := registrytest.Service{Package: "borrow", Name: "S", Methods: []registrytest.Method{{Name: "Peek",
		Tool: &optionsv1.McpTool{Name: "borrow.peek", Title: "Peek", Description: "Peeks.", RequiredScopes: []string{"notes.read"},
			Annotations: &optionsv1.ToolAnnotations{ReadOnly: proto.Bool(true)}}}}}
	orphan := registrytest.Service{Package: "orphan", Name: "S", Methods: []registrytest.Method{{Name: "Do",
		Tool: &optionsv1.McpTool{Name: "orphan.do", Title: "Do", Description: "Does.", RequiredScopes: []string{"nobody.declares"}}}}}
	a := registrytest.Start(t, "alpha", []registrytest.Service{notes("notes")})
	b := registrytest.Start(t, "beta", []registrytest.Service{borrow})
	c := registrytest.Start(t, "gamma", []registrytest.Service{orphan})
	h := discover(t, b, c, a)
	reg := h.d.Refresh(context.Background())
	if got := toolNames(reg); got != "borrow.peek notes.add notes.list" {
		t.Fatalf("tools = %q", got)
	}
	if !strings.Contains(h.log.String(), `msg="capability service refused" backend=gamma service=orphan.S reason="orphan.S.Do: tool orphan.do requires scope \"nobody.declares\"`) {
		t.Errorf("log:\n%s", h.log)
	}
	if v := h.metric(t, "tollgate_capability_conflicts_total", "gamma"); v != 0 {
		t.Errorf("an invalid service counted as a conflict: %v", v)
	}
}

func TestDiscoveryRemovedRPCDisappearsWhileCallsInFlightFinish(t *testing.T) {
	a := registrytest.Start(t, "alpha", []registrytest.Service{notes("notes")})
	h := discover(t, a)
	reg := h.d.Refresh(context.Background())
	add, ok := reg.Tool("notes.add")
	if !ok {
		t.Fatal("no notes.add")
	}
	entered, release := a.Hold()
	done := make(chan error, 1)
	go func() {
		conn, _ := h.d.Conns().For(add.Capability)
		in, _ := add.Capability.DecodeJSON([]byte(`{"text":"in flight"}`))
		_, err := add.Capability.Invoke(context.Background(), conn, in)
		done <- err
	}()
	<-entered

	// The backend drops AddNote.
	without := notes("notes")
	without.Methods = without.Methods[:1]
	a.Serve(t, without)
	reg = h.d.Refresh(context.Background())
	if got := toolNames(reg); got != "notes.list" {
		t.Fatalf("tools after AddNote was removed = %q", got)
	}
	if len(reg.Actions()) != 1 {
		t.Errorf("actions = %d", len(reg.Actions()))
	}
	if !strings.Contains(h.log.String(), `removed=[notes.add]`) {
		t.Errorf("log:\n%s", h.log)
	}
	release()
	if err := <-done; err != nil {
		t.Errorf("the call in flight ended with %v", err)
	}

	// The whole service gone: its scopes go too.
	a.Serve(t)
	reg = h.d.Refresh(context.Background())
	if toolNames(reg) != "" || len(reg.SupportedScopes()) != len(registry.OIDCScopes) {
		t.Errorf("after the service was removed: tools %q scopes %v", toolNames(reg), reg.ScopeNames())
	}
}

func TestDiscoveryInvalidOptionsRefuseTheService(t *testing.T) {
	bad := notes("bad")
	bad.Methods[0].Tool.Name = "Not A Name"
	a := registrytest.Start(t, "alpha", []registrytest.Service{bad, notes("good")})
	h := discover(t, a)
	reg := h.d.Refresh(context.Background())
	if got := toolNames(reg); got != "good.add good.list" {
		t.Fatalf("tools = %q", got)
	}
	if !strings.Contains(h.log.String(), `msg="capability service refused" backend=alpha service=bad.NotesService reason="bad.NotesService.ListNotes: tool name \"Not A Name\" must be dotted`) {
		t.Errorf("log:\n%s", h.log)
	}
}

// TestDiscoveryLongOperationDescriptionKeepsTheService: an
// actions_operation description of 301 to 700 characters, over the GPT
// Actions limit but within the bound the registry has always held it to,
// does not refuse the service (its MCP tools went with it): the tools and
// the operation are discovered, and the actions-api reports the document
// over the limits (TestOperationDescriptionOverLimitIsServedAndReported).
// Over 700 it is still refused.
func TestDiscoveryLongOperationDescriptionKeepsTheService(t *testing.T) {
	long := notes("long")
	long.Methods[0].Action.Description = strings.Repeat("d", 400)
	tooLong := notes("toolong")
	tooLong.Methods[0].Action.Description = strings.Repeat("d", registry.MaxDescription+1)
	a := registrytest.Start(t, "alpha", []registrytest.Service{long, tooLong})
	h := discover(t, a)
	reg := h.d.Refresh(context.Background())
	if got := toolNames(reg); got != "long.add long.list" {
		t.Fatalf("tools = %q, want long's", got)
	}
	var desc string
	for _, op := range reg.Actions() {
		if op.OperationID == "longList" {
			desc = op.Description
		}
	}
	if len(desc) != 400 {
		t.Errorf("operation longList description of %d characters, want 400", len(desc))
	}
	if log := h.log.String(); strings.Contains(log, "service=long.NotesService") ||
		!strings.Contains(log, `service=toolong.NotesService reason="toolong.NotesService.ListNotes: action description is longer than 700 characters`) {
		t.Errorf("log:\n%s", log)
	}
}

// A descriptor built at run time from bytes parsed without Tollgate's
// option types carries its options as unknown fields: the registry
// resolves them against registry.OptionTypes.
func TestOptionsParsedFromUnknownFields(t *testing.T) {
	fdp := notes("raw").File()
	b, err := proto.Marshal(fdp)
	if err != nil {
		t.Fatal(err)
	}
	blind := &descriptorpb.FileDescriptorProto{}
	if err := (proto.UnmarshalOptions{Resolver: new(protoregistry.Types)}).Unmarshal(b, blind); err != nil {
		t.Fatal(err)
	}
	mo := blind.GetService()[0].GetMethod()[0].GetOptions()
	if len(mo.ProtoReflect().GetUnknown()) == 0 || proto.HasExtension(mo, optionsv1.E_McpTool) {
		t.Fatal("the test needs options held as unknown fields")
	}
	fd, err := protodesc.NewFile(blind, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(fd.Services().Get(0))
	if err != nil {
		t.Fatal(err)
	}
	if got := toolNames(reg); got != "raw.add raw.list" {
		t.Errorf("tools = %q", got)
	}
	if s, ok := reg.Scope("raw.write"); !ok || s.Description != "Change your notes" {
		t.Errorf("scope = %+v", s)
	}
}

// TestReflectionEndsOKInTheClientMetrics: each refresh's reflection stream
// ends — read to the server's end — so grpc_client_handled_total counts it
// with code OK, as many as grpc_client_started_total. Left to the deferred
// cancel, the client interceptor never saw it end: every reflection was
// started and never handled, while one that failed (capability-core down)
// was counted, so a connector whose only calls are reflections (the
// auth-server) had a failure ratio of 1 in TollgateCapabilityCallsFailing
// after any failed refresh.
func TestReflectionEndsOKInTheClientMetrics(t *testing.T) {
	b := registrytest.Start(t, "alpha", []registrytest.Service{notes("notes")})
	reg := prometheus.NewRegistry()
	conn, err := grpcx.Dial(b.Addr, grpcx.ClientOptions{Registry: reg, Name: "alpha"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	d, err := registry.NewDiscovery(registry.DiscoveryOptions{
		Backends: []registry.Backend{{Name: b.Label, Target: b.Addr, Conn: conn}},
		Metrics:  prometheus.NewRegistry(), Log: slog.New(slog.NewTextHandler(&syncBuffer{}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got := toolNames(d.Refresh(context.Background())); !strings.Contains(got, "notes.") {
			t.Fatalf("tools after refresh: %q", got)
		}
	}
	// Interceptors report after the stream's last read returned; the
	// refreshes above returned after it.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["grpc_method"] != "ServerReflectionInfo" {
				continue
			}
			switch mf.GetName() {
			case "grpc_client_started_total":
				counts["started"] += m.GetCounter().GetValue()
			case "grpc_client_handled_total":
				counts["handled "+labels["grpc_code"]] += m.GetCounter().GetValue()
			}
		}
	}
	if counts["started"] != 2 || counts["handled OK"] != 2 || len(counts) != 2 {
		t.Errorf("reflection streams in the client metrics: %v, want 2 started and 2 handled OK", counts)
	}
}

// TestJSONNameConflictsRefuseTheService: protojson takes a field by its
// JSON name before its proto name, so in a request holding foo_bar
// (declared first) and fooBar, {"fooBar": …} set foo_bar — the field the
// inputSchema calls "fooBar" could not be given. protoc refuses this in
// proto3, but descriptors served by reflection are not protoc's: the
// registry refuses the capability, naming the fields, at any depth of the
// request; the backend's other services are served.
func TestJSONNameConflictsRefuseTheService(t *testing.T) {
	str := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum()
	opt := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()
	clash := registrytest.Shapes("clash")
	node := clash.Proto.MessageType[1] // Node, held by Echo's request
	node.Field = append(node.Field,
		&descriptorpb.FieldDescriptorProto{Name: proto.String("foo_bar"), Number: proto.Int32(50), Type: str, Label: opt, JsonName: proto.String("fooBar")},
		&descriptorpb.FieldDescriptorProto{Name: proto.String("fooBar"), Number: proto.Int32(51), Type: str, Label: opt, JsonName: proto.String("fooBar")})
	a := registrytest.Start(t, "alpha", []registrytest.Service{clash, registrytest.Shapes("good")})
	h := discover(t, a)
	reg := h.d.Refresh(context.Background())
	if got := toolNames(reg); got != "good.at good.echo good.lookup" {
		t.Fatalf("tools = %q\n%s", got, h.log)
	}
	if !strings.Contains(h.log.String(), `service=clash.ShapesService reason="clash.ShapesService.Echo: fields foo_bar and fooBar of clash.Node both answer to the JSON name \"fooBar\", and protojson could not tell them apart; rename one or set json_name"`) {
		t.Errorf("log:\n%s", h.log)
	}
}
