package idp

import (
	"crypto/subtle"
	"fmt"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// User is one account of the dev IdP, as written by `auth-server dev-init`
// in users.yaml. Passwords are plaintext: this is a development fixture.
type User struct {
	Username      string `json:"username"`
	Password      string `json:"password"`
	Subject       string `json:"sub"`
	Name          string `json:"name,omitempty"`
	GivenName     string `json:"given_name,omitempty"`
	FamilyName    string `json:"family_name,omitempty"`
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified,omitempty"`
}

// Users is the loaded user list, by username and by subject.
type Users struct {
	byName map[string]*User
	bySub  map[string]*User
}

// LoadUsers reads and checks a users.yaml file; it reports every problem at
// once.
func LoadUsers(path string) (*Users, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("users file: %w (run `auth-server dev-init` to write the default one)", err)
	}
	var doc struct {
		Users []User `json:"users"`
	}
	if err := yaml.UnmarshalStrict(b, &doc); err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	u := &Users{byName: map[string]*User{}, bySub: map[string]*User{}}
	var problems []string
	if len(doc.Users) == 0 {
		problems = append(problems, "no users")
	}
	for i := range doc.Users {
		usr := &doc.Users[i]
		at := fmt.Sprintf("users[%d]", i)
		switch {
		case usr.Username == "":
			problems = append(problems, at+": username is required")
		case u.byName[usr.Username] != nil:
			problems = append(problems, fmt.Sprintf("%s: username %q is listed twice", at, usr.Username))
		}
		if usr.Password == "" {
			problems = append(problems, at+": password is required")
		}
		switch {
		case usr.Subject == "":
			problems = append(problems, at+": sub is required")
		case u.bySub[usr.Subject] != nil:
			problems = append(problems, fmt.Sprintf("%s: sub %q is listed twice", at, usr.Subject))
		case strings.Contains(usr.Subject, ":"):
			// The provider packs "tokenID:subject" into its opaque access tokens.
			problems = append(problems, fmt.Sprintf("%s: sub %q must not contain ':'", at, usr.Subject))
		}
		u.byName[usr.Username] = usr
		u.bySub[usr.Subject] = usr
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("users file %s:\n  - %s", path, strings.Join(problems, "\n  - "))
	}
	return u, nil
}

// Authenticate returns the user whose username and password match. Unknown
// users and wrong passwords are indistinguishable to the caller.
func (u *Users) Authenticate(username, password string) (*User, bool) {
	usr, ok := u.byName[username]
	want := "\x00never-a-password"
	if ok {
		want = usr.Password
	}
	match := subtle.ConstantTimeCompare([]byte(password), []byte(want)) == 1
	return usr, ok && match
}

// BySubject returns the user with subject sub.
func (u *Users) BySubject(sub string) (*User, bool) {
	usr, ok := u.bySub[sub]
	return usr, ok
}

// Len is the number of users.
func (u *Users) Len() int { return len(u.byName) }
