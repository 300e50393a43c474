package registry

import (
	"fmt"
	"slices"
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	optionsv1 "github.com/tollgate/tollgate/proto/gen/tollgate/options/v1"
)

// MaxScopeDescription bounds a scope's description: it is one line of the
// consent page.
const MaxScopeDescription = 120

// Scope is an OAuth scope the fleet knows, with the words the consent page
// shows for it.
type Scope struct {
	Name        string
	Description string
	// Service is the full name of the service that declared the scope;
	// empty for the OpenID Connect scopes.
	Service string
}

// OIDCScopes are the OpenID Connect scopes (OpenID Connect Core 1.0 §5.4
// and §11) that every install supports whatever its capabilities: they are
// the auth-server's, not a capability's. A service must not declare them.
var OIDCScopes = []Scope{
	{Name: "openid", Description: "Know who you are (your account identifier)"},
	{Name: "profile", Description: "Your name and username"},
	{Name: "email", Description: "Your email address"},
	{Name: "offline_access", Description: "Stay connected when you are away"},
}

func isOIDCScope(name string) bool {
	return slices.ContainsFunc(OIDCScopes, func(s Scope) bool { return s.Name == name })
}

// serviceScopes reads the scope options of sd.
func serviceScopes(sd protoreflect.ServiceDescriptor) []*optionsv1.Scope {
	opts, _ := resolveOptions(sd.Options()).(*descriptorpb.ServiceOptions)
	if opts == nil {
		return nil
	}
	s, _ := proto.GetExtension(opts, optionsv1.E_Scope).([]*optionsv1.Scope)
	return s
}

// declareScopes records the scopes sd declares and returns its problems.
func (r *Registry) declareScopes(sd protoreflect.ServiceDescriptor) []string {
	var problems []string
	svc := string(sd.FullName())
	for _, s := range serviceScopes(sd) {
		name, desc := s.GetName(), s.GetDescription()
		switch {
		case !scopeRE.MatchString(name):
			problems = append(problems, fmt.Sprintf("%s: scope %q is not a valid scope token (RFC 6749 §3.3)", svc, name))
			continue
		case isOIDCScope(name):
			problems = append(problems, fmt.Sprintf("%s: scope %q is an OpenID Connect scope; it is always supported and must not be declared", svc, name))
			continue
		case desc == "" || len(desc) > MaxScopeDescription:
			problems = append(problems, fmt.Sprintf("%s: scope %q needs a description of 1 to %d characters (the consent page shows it)", svc, name, MaxScopeDescription))
		}
		if prev, dup := r.scopes[name]; dup {
			problems = append(problems, fmt.Sprintf("%s: scope %q already declared by %s", svc, name, prev.Service))
			continue
		}
		r.scopes[name] = Scope{Name: name, Description: desc, Service: svc}
	}
	return problems
}

// checkRequiredScopes reports scopes that tools and actions require but
// nobody declared.
func (r *Registry) checkRequiredScopes() []string {
	var problems []string
	check := func(owner, what string, scopes []string) {
		for _, s := range scopes {
			if _, ok := r.Scope(s); !ok && scopeRE.MatchString(s) {
				problems = append(problems, fmt.Sprintf("%s: %s requires scope %q, which no service declares (option tollgate.options.v1.scope)", owner, what, s))
			}
		}
	}
	for _, c := range r.caps {
		for _, t := range c.Tools {
			check(string(c.Method.FullName()), "tool "+t.Name, t.RequiredScopes)
		}
		if c.Action != nil {
			check(string(c.Method.FullName()), "action "+c.Action.OperationID, c.Action.RequiredScopes)
		}
	}
	return problems
}

// Scope returns the scope called name: an OpenID Connect scope or one a
// service declares.
func (r *Registry) Scope(name string) (Scope, bool) {
	for _, s := range OIDCScopes {
		if s.Name == name {
			return s, true
		}
	}
	s, ok := r.scopes[name]
	return s, ok
}

// SupportedScopes is every scope the install supports: the OpenID Connect
// scopes, then the declared ones sorted by name. The auth-server publishes
// it as scopes_supported and accepts nothing else.
func (r *Registry) SupportedScopes() []Scope {
	out := slices.Clone(OIDCScopes)
	declared := make([]Scope, 0, len(r.scopes))
	for _, s := range r.scopes {
		declared = append(declared, s)
	}
	sort.Slice(declared, func(i, j int) bool { return declared[i].Name < declared[j].Name })
	return append(out, declared...)
}

// ScopeNames returns the names of SupportedScopes, in the same order.
func (r *Registry) ScopeNames() []string {
	all := r.SupportedScopes()
	out := make([]string, len(all))
	for i, s := range all {
		out[i] = s.Name
	}
	return out
}
