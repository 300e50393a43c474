package tests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// localRedisConf writes the bundled Redis's rendered redis.conf for a
// redis-server on this machine: loopback on port, data in dir, and the
// passwords it includes from dir/run/auth.conf, where localRedisScript's
// container script writes them.
func localRedisConf(t *testing.T, conf, dir string, port int) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o700); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(conf, "\n") {
		switch f := strings.Fields(l); {
		case len(f) > 0 && f[0] == "bind":
			l = "bind 127.0.0.1"
		case len(f) > 0 && f[0] == "port":
			l = fmt.Sprintf("port %d", port)
		case len(f) > 0 && f[0] == "dir":
			l = "dir " + dir
		case len(f) > 0 && f[0] == "include":
			l = strings.Replace(l, "/run/redis/", filepath.Join(dir, "run")+"/", 1)
		}
		lines = append(lines, l)
	}
	confFile := filepath.Join(dir, "redis.conf")
	writeFile(t, confFile, []byte(strings.Join(lines, "\n")))
	return confFile
}

// localRedisScript is the container's sh -c script with this machine's
// paths: server (a redis-server) on confFile, the passwords in dir/run.
func localRedisScript(t *testing.T, script, server, confFile, dir string) string {
	t.Helper()
	if !strings.Contains(script, "exec redis-server /etc/redis/redis.conf") {
		t.Fatalf("the container's script does not exec redis-server /etc/redis/redis.conf:\n%s", script)
	}
	script = strings.Replace(script, "redis-server /etc/redis/redis.conf", server+" "+confFile, 1)
	return strings.ReplaceAll(script, "/run/redis/", filepath.Join(dir, "run")+"/")
}

// lookRedis returns the path of redis-server; without redis-server and
// redis-cli on PATH the test fails under CHARTS_STRICT and is skipped
// otherwise.
func lookRedis(t *testing.T) string {
	t.Helper()
	server, err := exec.LookPath("redis-server")
	if err == nil {
		_, err = exec.LookPath("redis-cli")
	}
	if err != nil {
		if strict() {
			t.Fatal(err)
		}
		t.Skip("SKIPPED: redis-server or redis-cli is not on PATH")
	}
	return server
}

// startLocalRedis starts cmd (a redis-server, or the container's script
// that execs one) with its output in dir/redis.log, stops it when the test
// ends, and waits up to 30 s until the default user with password gets
// PONG on port; what names the start in the failure.
func startLocalRedis(t *testing.T, cmd *exec.Cmd, dir string, port int, password, what string) {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = logf.Close() })
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(30 * time.Second)
	for redisCLI(port, "default", password, "PING") != "PONG" {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("redis-server did not start from %s:\n%s", what, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// redisCLI runs redis-cli against the local redis-server on port, logged
// in as user with password (from REDISCLI_AUTH, never an argument), and
// returns its trimmed output.
func redisCLI(port int, user, password string, args ...string) string {
	c := exec.Command("redis-cli", append([]string{"-p", fmt.Sprint(port), "--user", user, "--no-auth-warning"}, args...)...)
	c.Env = append(os.Environ(), "REDISCLI_AUTH="+password)
	b, _ := c.CombinedOutput()
	return strings.TrimSpace(string(b))
}

// TestBundledRedisPasswordsOffTheCommandLine: the bundled Redis's
// passwords reach redis-server through a file its container's script
// writes from the environment, never as a process argument, where ps,
// /proc/<pid>/cmdline and exec auditing on the node would show them (Redis
// replaces its process title only once it has started). A real
// redis-server runs the rendered script through a wrapper that records the
// arguments it is given; with passwords holding every character redis.conf
// quoting cares about, the fleet's password and the backend user's log in,
// wrong ones are refused, and neither appears in the rendered container,
// the arguments or redis-server's environment. An empty password stops the
// container before redis-server starts (requirepass "" would turn
// authentication off).
func TestBundledRedisPasswordsOffTheCommandLine(t *testing.T) {
	server := lookRedis(t)
	const (
		fleetPassword   = "fleet \"pass\\word\"\n'$(id)' `x` ${HOME} > #1"
		backendPassword = "\\\"backend\" pass\nword\\n>$0"
	)
	for _, backendUser := range []bool{true, false} {
		t.Run(fmt.Sprintf("backendUser %t", backendUser), func(t *testing.T) {
			values := filepath.Join(t.TempDir(), "values.yaml")
			writeFile(t, values, []byte(fmt.Sprintf("redis:\n  bundled:\n    backendUser:\n      enabled: %t\n", backendUser)))
			out, err := render(t, filepath.Join(chartDir(t), "ci", "minimal-values.yaml"), values)
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, out)
			}
			var conf string
			var container map[string]any
			secrets := map[string]string{}
			for _, d := range splitDocs(t, out) {
				switch d["kind"] {
				case "ConfigMap":
					if c := str(d, "data", "redis.conf"); c != "" {
						conf = c
					}
				case "Secret":
					for k, v := range dig(d, "data") {
						secrets[str(d, "metadata", "name")+"/"+k] = v.(string)
					}
				case "StatefulSet":
					for _, c := range list(dig(d, "spec", "template", "spec"), "containers") {
						if c["name"] == "redis" {
							container = c
						}
					}
				}
			}
			if conf == "" || container == nil {
				t.Fatalf("no bundled Redis rendered")
			}
			var command []string
			for _, a := range container["command"].([]any) {
				command = append(command, a.(string))
			}
			if len(command) < 3 || command[0] != "sh" || command[1] != "-c" {
				t.Fatalf("the container's command %q is not sh -c", command)
			}
			for _, e := range list(container, "env") {
				if _, ok := e["value"]; ok && strings.Contains(fmt.Sprint(e["name"]), "PASSWORD") {
					t.Errorf("env %s has a literal value, not a secretKeyRef", e["name"])
				}
			}
			// The generated passwords (base64 in the Secrets) appear nowhere
			// in the container, nor does any argument pass one.
			rendered := fmt.Sprint(container)
			for name, v := range secrets {
				if strings.HasSuffix(name, "password") && strings.Contains(rendered, v) {
					t.Errorf("the redis container holds Secret %s's value", name)
				}
			}
			for _, a := range append(append([]string{}, command...), fmt.Sprint(container["args"])) {
				if strings.Contains(a, "--requirepass") || strings.Contains(a, "--user ") {
					t.Errorf("a redis-server argument passes a password: %q", a)
				}
			}

			dir := t.TempDir()
			port := freePort(t)
			confFile := localRedisConf(t, conf, dir, port)
			argvFile := filepath.Join(dir, "argv")
			wrapper := filepath.Join(dir, "redis-server-wrapper")
			writeFile(t, wrapper, []byte(fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$@\" >%q\nexec %q \"$@\"\n", argvFile, server)))
			if err := os.Chmod(wrapper, 0o755); err != nil {
				t.Fatal(err)
			}
			script := localRedisScript(t, command[2], wrapper, confFile, dir)

			// An empty password: the script stops before redis-server (here
			// a recorder that exits at once).
			recorder := filepath.Join(dir, "redis-server-recorder")
			writeFile(t, recorder, []byte(fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$@\" >%q\n", argvFile)))
			if err := os.Chmod(recorder, 0o755); err != nil {
				t.Fatal(err)
			}
			empty := exec.Command("sh", append([]string{"-c", localRedisScript(t, command[2], recorder, confFile, dir)}, command[3:]...)...)
			empty.Env = append(os.Environ(), "REDIS_PASSWORD=", "REDIS_BACKEND_PASSWORD="+backendPassword)
			if b, err := empty.CombinedOutput(); err == nil || !strings.Contains(string(b), "REDIS_PASSWORD is empty") {
				t.Errorf("an empty REDIS_PASSWORD: %v %q, want the script to refuse it", err, b)
			}
			if _, err := os.Stat(argvFile); err == nil {
				t.Errorf("redis-server was started with an empty REDIS_PASSWORD")
				_ = os.Remove(argvFile)
			}

			cmd := exec.Command("sh", append([]string{"-c", script}, command[3:]...)...)
			cmd.Env = append(os.Environ(), "REDIS_PASSWORD="+fleetPassword, "REDIS_BACKEND_PASSWORD="+backendPassword)
			startLocalRedis(t, cmd, dir, port, fleetPassword, "the rendered script")
			cli := func(user, password string, args ...string) string { return redisCLI(port, user, password, args...) }

			argv, err := os.ReadFile(argvFile)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(argv)); got != confFile {
				t.Errorf("redis-server's arguments %q, want the config file alone", got)
			}
			// sh exec'd the wrapper, which exec'd redis-server: one process.
			environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", cmd.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{fleetPassword, backendPassword} {
				if bytes.Contains(argv, []byte(p)) || bytes.Contains(environ, []byte(p)) {
					t.Errorf("a password is in redis-server's arguments or environment")
				}
			}
			if fi, err := os.Stat(filepath.Join(dir, "run", "auth.conf")); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("auth.conf: %v, mode %v, want 0600", err, fi)
			}

			if got := cli("default", fleetPassword+"x", "PING"); !strings.Contains(got, "WRONGPASS") {
				t.Errorf("the fleet's user with a wrong password: %q, want WRONGPASS", got)
			}
			if got := cli("default", "", "PING"); !strings.Contains(got, "NOAUTH") && !strings.Contains(got, "WRONGPASS") {
				t.Errorf("no password: %q, want NOAUTH", got)
			}
			if backendUser {
				if got := cli("tollgate-backend", backendPassword, "PING"); got != "PONG" {
					t.Errorf("the backend user with its password: %q, want PONG", got)
				}
				for _, wrong := range []string{backendPassword[1:], "\"" + backendPassword + "\"", fleetPassword} {
					if got := cli("tollgate-backend", wrong, "PING"); !strings.Contains(got, "WRONGPASS") {
						t.Errorf("the backend user with a wrong password: %q, want WRONGPASS", got)
					}
				}
			} else if got := cli("tollgate-backend", backendPassword, "PING"); !strings.Contains(got, "WRONGPASS") {
				t.Errorf("backendUser disabled, yet the backend user logs in: %q", got)
			}
		})
	}
}
