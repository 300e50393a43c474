package testharness

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// backendACLFile is the one place the Redis ACL rules of a capability
// backend's user are written down: the chart gives them to the bundled
// Redis (redis.bundled.backendUser), docs/operations/redis.md quotes them.
const backendACLFile = "charts/tollgate/files/redis-backend-acl.txt"

// BackendACLRules returns the rules of backendACLFile — found by walking up
// from the working directory to the repository root — for the key prefix
// prefix (their "<prefix>"), as the arguments ACL SETUSER takes after a
// user's name, state and password.
func BackendACLRules(t testing.TB, prefix string) []string {
	t.Helper()
	path, err := findUp(backendACLFile)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rules []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rules = append(rules, strings.Fields(strings.ReplaceAll(line, "<prefix>", prefix))...)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rules) == 0 {
		t.Fatalf("%s holds no rules", path)
	}
	return rules
}

// AddBackendUser creates on r the ACL user name, with password and the
// rules of BackendACLRules for prefix: the credential the chart gives
// capability backends. It fails the test if the server refuses the rules.
func (r *Redis) AddBackendUser(t testing.TB, prefix, name, password string) {
	t.Helper()
	r.AddUser(t, name, password, BackendACLRules(t, prefix)...)
}

// findUp looks for rel in the working directory and each of its parents.
func findUp(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New(rel + " not found above the working directory")
		}
		dir = parent
	}
}
