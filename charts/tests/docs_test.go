package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestDocsCreateTheSecretsTheMinimalValuesReference reads the deployment
// guide's minimal my-values.yaml and the secret commands just before it,
// and checks that the commands create exactly the Secrets (and keys) the
// values reference by name: a first install that follows the guide
// literally must not wait for a Secret nobody created.
func TestDocsCreateTheSecretsTheMinimalValuesReference(t *testing.T) {
	commands := docsBlock(t, docsSecretCommands, "bash")
	values := docsBlock(t, docsMinimalValues, "yaml")

	// What the commands create: secret name -> keys.
	created := map[string][]string{}
	create := regexp.MustCompile(`create secret generic (\S+)((?:\s*\\?\n?\s*--from-(?:literal|file)=[^\s]+)+)`)
	key := regexp.MustCompile(`--from-(?:literal|file)=([^=\s]+)`)
	for _, m := range create.FindAllStringSubmatch(commands, -1) {
		for _, k := range key.FindAllStringSubmatch(m[2], -1) {
			created[m[1]] = append(created[m[1]], filepath.Base(k[1]))
		}
	}

	// What the values reference, with the chart's default key names.
	var v struct {
		Upstream struct {
			ExistingSecret    string `json:"existingSecret"`
			ExistingSecretKey string `json:"existingSecretKey"`
		} `json:"upstream"`
		AuthServer struct {
			SigningKeys struct {
				ExistingSecret string `json:"existingSecret"`
				Active         string `json:"active"`
			} `json:"signingKeys"`
			Clients struct {
				ExistingSecret    string `json:"existingSecret"`
				ExistingSecretKey string `json:"existingSecretKey"`
			} `json:"clients"`
			TokenSecret struct {
				ExistingSecret    string `json:"existingSecret"`
				ExistingSecretKey string `json:"existingSecretKey"`
			} `json:"tokenSecret"`
			ClientSecretKey struct {
				ExistingSecret    string `json:"existingSecret"`
				ExistingSecretKey string `json:"existingSecretKey"`
			} `json:"clientSecretKey"`
		} `json:"authServer"`
	}
	if err := yaml.Unmarshal([]byte(values), &v); err != nil {
		t.Fatalf("the guide's my-values.yaml: %v", err)
	}
	def := func(s, d string) string {
		if s == "" {
			return d
		}
		return s
	}
	referenced := map[string][]string{}
	add := func(name, k string) {
		if name != "" {
			referenced[name] = append(referenced[name], k)
		}
	}
	add(v.Upstream.ExistingSecret, def(v.Upstream.ExistingSecretKey, "client-secret"))
	add(v.AuthServer.Clients.ExistingSecret, def(v.AuthServer.Clients.ExistingSecretKey, "clients.yaml"))
	add(v.AuthServer.TokenSecret.ExistingSecret, def(v.AuthServer.TokenSecret.ExistingSecretKey, "token-hmac-secret"))
	add(v.AuthServer.ClientSecretKey.ExistingSecret, def(v.AuthServer.ClientSecretKey.ExistingSecretKey, "client-secret-hmac-key"))
	add(v.AuthServer.SigningKeys.ExistingSecret, v.AuthServer.SigningKeys.Active+".pem")
	if len(referenced) == 0 {
		t.Fatal("the guide's minimal values reference no Secret: this test checks nothing")
	}
	for _, m := range []map[string][]string{created, referenced} {
		for _, ks := range m {
			sort.Strings(ks)
		}
	}
	for name, keys := range referenced {
		if strings.Join(created[name], ",") != strings.Join(keys, ",") {
			t.Errorf("the values reference Secret %s with keys %v; the documented commands create %v", name, keys, created[name])
		}
	}
	for name := range created {
		if _, ok := referenced[name]; !ok {
			t.Errorf("the documented commands create Secret %s, which the minimal values do not reference", name)
		}
	}
}

// Where the deployment guide keeps its first-install secret commands and
// its minimal values.
const (
	docsSecretCommands = "Create\nexactly these three before installing"
	docsMinimalValues  = "A minimal `my-values.yaml`"
)

// docsBlock returns the first ```lang block after the text after in
// docs/deployment/README.md.
func docsBlock(t *testing.T, after, lang string) string {
	t.Helper()
	block, _ := docsFileBlock(t, filepath.Join("docs", "deployment", "README.md"), after, lang)
	return block
}

// docsFileBlock returns the first ```lang block after the text after in
// the repository's file rel, and whether it lies in after's section:
// before the next line that begins with "#".
func docsFileBlock(t *testing.T, rel, after, lang string) (block string, inSection bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, after)
	if i < 0 {
		t.Fatalf("%s no longer says %q", rel, after)
	}
	rest := doc[i+len(after):]
	fence := "```" + lang + "\n"
	j := strings.Index(rest, fence)
	if j < 0 {
		t.Fatalf("no ```%s block after %q in %s", lang, after, rel)
	}
	next := strings.Index(rest, "\n#")
	inSection = next < 0 || next > j
	rest = rest[j+len(fence):]
	end := strings.Index(rest, "```")
	if end < 0 {
		t.Fatalf("the ```%s block after %q in %s is not closed", lang, after, rel)
	}
	return rest[:end], inSection
}

// TestDocsSecretTableNamesEverySecretAndItsDefaultKeys reads the deployment
// guide's table of Secrets ("Keys" | "Values") and checks it against
// values.yaml: every value that names a Secret (existingSecret,
// tlsCASecret) has a row, and the row gives the chart's default name of
// each key read from it (existingSecret*Key, tlsCASecretKey), so an
// operator who creates the Secret from the table creates the keys the
// pods mount.
func TestDocsSecretTableNamesEverySecretAndItsDefaultKeys(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "deployment", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "| Secret | Keys | Values |")
	if i < 0 {
		t.Fatal(`docs/deployment/README.md has no "| Secret | Keys | Values |" table`)
	}
	// Row keys column by every value path its Values column names.
	rows := map[string]string{}
	path := regexp.MustCompile("`([a-zA-Z]+(?:\\.[a-zA-Z0-9]+)+)`")
	for _, line := range strings.Split(doc[i:], "\n")[2:] {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			break
		}
		cols := strings.Split(strings.Trim(line, "|"), "|")
		if len(cols) != 3 {
			t.Fatalf("table row has %d columns: %s", len(cols), line)
		}
		for _, m := range path.FindAllStringSubmatch(cols[2], -1) {
			rows[m[1]] = cols[1]
		}
	}

	vb, err := os.ReadFile(filepath.Join(chartDir(t), "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(vb, &values); err != nil {
		t.Fatal(err)
	}
	refs := 0
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			if k != "existingSecret" && k != "tlsCASecret" {
				continue
			}
			refs++
			keys, ok := rows[prefix+k]
			if !ok {
				t.Errorf("values.yaml's %s%s names a Secret; the guide's Secrets table has no row for it", prefix, k)
				continue
			}
			for sk, sv := range m {
				def, _ := sv.(string)
				if def == "" || !strings.HasPrefix(sk, k) || !strings.HasSuffix(sk, "Key") {
					continue
				}
				if !strings.Contains(keys, "`"+def+"`") {
					t.Errorf("the guide's Secrets table row for %s%s does not name key `%s` (the default of %s%s)", prefix, k, def, prefix, sk)
				}
			}
		}
	}
	walk("", values)
	if refs < 7 {
		t.Fatalf("found only %d Secret references in values.yaml: this test checks too little", refs)
	}
}

// TestDocsLeaveNoPrivateKeyOnDisk reads every shell block of the
// repository's Markdown and checks that a command writing a private key
// (openssl genpkey, genrsa, req -newkey/-keyout, or a Secret's key decoded
// with base64 -d into a .pem/.key file) writes it into a directory the same
// block made with mktemp -d and removes later with rm -r: an operator who
// runs the block keeps no key file outside the Secret it went into. A key
// sent to stdout (into a Secret through <(…)) writes no file and passes.
func TestDocsLeaveNoPrivateKeyOnDisk(t *testing.T) {
	root := repoRoot(t)
	checked := 0
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "node_modules" || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".md") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, block := range shellBlocks(string(b)) {
			for _, bad := range keyFilesLeft(block.text) {
				t.Errorf("%s: this block leaves a private key on disk (%s), or removes it whether or not it reached its Secret: write it into a directory made with mktemp -d and rm -r it in the same block, chained with && after the command that stores it, or send it to stdout:\n%s", rel, bad, block.text)
			}
			for _, bad := range unsafeSubstitutions(block) {
				t.Errorf("%s: %s:\n%s", rel, bad, block.text)
			}
			checked++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no shell block found in the repository's Markdown")
	}
}

// shellBlock is one shell block of a Markdown document: its text and the
// language its fence names (sh, bash or shell).
type shellBlock struct{ lang, text string }

// shellBlocks returns the ```sh, ```bash and ```shell blocks of a
// Markdown document, indented ones (in list items) included.
func shellBlocks(doc string) []shellBlock {
	var blocks []shellBlock
	var cur []string
	lang := ""
	for _, line := range strings.Split(doc, "\n") {
		fence := strings.TrimSpace(line)
		switch {
		case lang == "" && (fence == "```sh" || fence == "```bash" || fence == "```shell"):
			lang, cur = strings.TrimPrefix(fence, "```"), nil
		case lang != "" && fence == "```":
			blocks = append(blocks, shellBlock{lang, strings.Join(cur, "\n")})
			lang = ""
		case lang != "":
			cur = append(cur, strings.TrimSpace(line))
		}
	}
	return blocks
}

var (
	substitution = regexp.MustCompile(`<\(`)
	fromFileSub  = regexp.MustCompile(`--from-file=[^=\s]+=<\(\s*(\S+)`)
)

// unsafeSubstitutions returns what is wrong with a block's process
// substitutions <(…): they are bash's (POSIX sh has none), so the block
// must be fenced bash; and a Secret's value read from one must come from
// the shell's printf of a value already made: the exit status of a command
// inside <(…) is checked by nothing (not set -e, not pipefail), so a
// failing openssl there would store an empty key.
func unsafeSubstitutions(b shellBlock) []string {
	var bad []string
	if substitution.MatchString(b.text) && b.lang != "bash" {
		bad = append(bad, fmt.Sprintf("a block using <(…), bash's process substitution, is fenced %s, not bash", b.lang))
	}
	for _, line := range strings.Split(b.text, "\n") {
		for _, m := range fromFileSub.FindAllStringSubmatch(line, -1) {
			if m[1] != "printf" {
				bad = append(bad, fmt.Sprintf("a Secret's value comes from %s inside <(…), whose failure nothing sees (the Secret would get an empty value): make the value first (v=$(%s …) &&), then --from-file=KEY=<(printf '%%s\\n' \"$v\")", m[1], m[1]))
			}
		}
	}
	return bad
}

var (
	keyWriter = regexp.MustCompile(`\bopenssl\s+(genpkey|genrsa|req)\b|\bbase64\s+(-d|--decode)\s*>`)
	keyTarget = regexp.MustCompile(`(?:-out|-keyout|>)\s+("?[^\s"]+"?)`)
	tempDir   = regexp.MustCompile(`(?m)^(\w+)=\$\(mktemp -d\)`)
)

// keyFilesLeft returns the private key files a shell block writes and
// leaves: every one not inside a mktemp -d directory of the block that an
// rm -r "$dir" later in the same && chain removes (an rm that runs
// whatever the commands before it did would remove the key's only copy
// when kubectl failed to store it).
func keyFilesLeft(block string) []string {
	// One command (or && chain) a line: drop the comments, join the
	// continuations and the lines a trailing && continues.
	var lines []string
	cont := false
	for _, line := range strings.Split(block, "\n") {
		if c := strings.Index(line, " #"); c >= 0 {
			line = line[:c]
		}
		if strings.HasPrefix(line, "#") {
			line = ""
		}
		line = strings.TrimSpace(line)
		if cont {
			lines[len(lines)-1] += " " + line
		} else {
			lines = append(lines, line)
		}
		cont = strings.HasSuffix(line, "\\") || strings.HasSuffix(line, "&&")
		if strings.HasSuffix(line, "\\") {
			last := lines[len(lines)-1]
			lines[len(lines)-1] = last[:len(last)-1]
		}
	}
	var left []string
	for i, line := range lines {
		m := keyWriter.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var targets []string
		for _, t := range keyTarget.FindAllStringSubmatch(line, -1) {
			flag := strings.Fields(t[0])[0]
			file := strings.Trim(t[1], `"`)
			switch {
			case m[1] == "req" && flag != "-keyout": // req's -out is the certificate
			case m[1] == "" && !strings.HasSuffix(file, ".pem") && !strings.HasSuffix(file, ".key"):
			default:
				targets = append(targets, file)
			}
		}
		if m[1] == "req" && strings.Contains(line, "-newkey") && !strings.Contains(line, "-keyout") {
			targets = append(targets, "privkey.pem") // req's default key file
		}
		for _, file := range targets {
			if !removedTempDir(lines, i, file) {
				left = append(left, file)
			}
		}
	}
	return left
}

// removedTempDir reports whether file lies in "$dir/", dir made by mktemp -d
// before line at and removed by rm -r "$dir" after it; when the block
// itself stores the key (--from-file from "$dir"), the rm must follow that
// command in one && chain, so that it runs only once the key is stored.
func removedTempDir(lines []string, at int, file string) bool {
	dir, ok := strings.CutPrefix(file, "$")
	if !ok {
		return false
	}
	dir, _, ok = strings.Cut(dir, "/")
	if !ok {
		return false
	}
	made := false
	for i, line := range lines {
		if m := tempDir.FindStringSubmatch(line); i < at && m != nil && m[1] == dir {
			made = true
		}
	}
	stored, chained := false, false
	for i := at; i < len(lines); i++ {
		steps := strings.Split(lines[i], "&&")
		if i == at {
			for len(steps) > 0 && !keyWriter.MatchString(steps[0]) {
				steps = steps[1:]
			}
			steps = steps[1:]
		}
		chained = false // a new line runs whatever the last one did
		for _, step := range steps {
			f := strings.Fields(step)
			if len(f) == 3 && f[0] == "rm" && (f[1] == "-r" || f[1] == "-rf") && strings.Trim(f[2], `"`) == "$"+dir {
				return made && (!stored || chained)
			}
			if strings.Contains(step, "--from-file") && strings.Contains(step, "$"+dir+"/") {
				stored, chained = true, true
			}
			if strings.ContainsAny(step, ";|") {
				chained = false // ; || and | run the rest whatever it did
			}
		}
	}
	return false
}

// TestKeyFilesLeft pins what TestDocsLeaveNoPrivateKeyOnDisk takes for a
// key left on disk, refusals first.
func TestKeyFilesLeft(t *testing.T) {
	for _, c := range []struct {
		name, block string
		left        string // the files left, comma separated
	}{
		{"genpkey into the working directory", "openssl genpkey -algorithm RSA -out k.pem", "k.pem"},
		{"genrsa", "openssl genrsa -out k.pem 2048", "k.pem"},
		{"req -keyout; its -out is the certificate", "openssl req -x509 -newkey rsa:2048 -nodes -keyout k.pem -out c.pem", "k.pem"},
		{"req -newkey without -keyout", "openssl req -x509 -newkey rsa:2048 -nodes -out c.pem", "privkey.pem"},
		{"a Secret's key decoded into a file", "kubectl get secret s -o jsonpath='{.data.k\\.pem}' | base64 -d > k.pem", "k.pem"},
		{"continued onto the next line", "openssl genpkey -algorithm RSA \\\n  -out k.pem", "k.pem"},
		{"a temporary directory not removed", "d=$(mktemp -d)\nopenssl genpkey -algorithm RSA -out \"$d/k.pem\"", "$d/k.pem"},
		{"removed before the key is written", "d=$(mktemp -d)\nrm -r \"$d\"\nopenssl genpkey -algorithm RSA -out \"$d/k.pem\"", "$d/k.pem"},
		{"a directory not made by mktemp", "d=keys\nopenssl genpkey -algorithm RSA -out \"$d/k.pem\"\nrm -r \"$d\"", "$d/k.pem"},
		{"removed even if storing it failed", "d=$(mktemp -d)\nopenssl genpkey -algorithm RSA -out \"$d/k.pem\"\nkubectl create secret generic s --from-file=\"$d/k.pem\"\nrm -r \"$d\"", "$d/k.pem"},
		{"removed after ;", "d=$(mktemp -d)\nopenssl genpkey -algorithm RSA -out \"$d/k.pem\" &&\nkubectl create secret generic s --from-file=\"$d/k.pem\"; rm -r \"$d\"", "$d/k.pem"},
		{"stored by hand between (no kubectl in the block)", "d=$(mktemp -d)\nopenssl genpkey -algorithm RSA -out \"$d/k.pem\"\n# add \"$d/k.pem\" to the Secret, then:\nrm -r \"$d\"", ""},
		{"removed after ||", "d=$(mktemp -d)\nopenssl genpkey -algorithm RSA -out \"$d/k.pem\" &&\nkubectl create secret generic s --from-file=\"$d/k.pem\" || true &&\nrm -r \"$d\"", "$d/k.pem"},
		{"a temporary directory removed once stored", "d=$(mktemp -d)\nopenssl genpkey -algorithm RSA -out \"$d/k.pem\" &&\nkubectl create secret generic s \\\n  --from-file=\"$d/k.pem\" &&\nrm -r \"$d\"", ""},
		{"to stdout, into a Secret", "kubectl create secret generic s --from-file=k.pem=<(openssl genpkey -algorithm RSA)", ""},
		{"a commented command", "# openssl genpkey -algorithm RSA -out k.pem", ""},
		{"a decoded value that is no key file", "kubectl get secret s -o jsonpath='{.data.x}' | base64 -d > x.txt", ""},
	} {
		if got := strings.Join(keyFilesLeft(c.block), ","); got != c.left {
			t.Errorf("%s: keyFilesLeft(%q) = %q, want %q", c.name, c.block, got, c.left)
		}
	}
}

// TestUnsafeSubstitutions pins what TestDocsLeaveNoPrivateKeyOnDisk
// refuses in a block's process substitutions, refusals first.
func TestUnsafeSubstitutions(t *testing.T) {
	for _, c := range []struct {
		name string
		b    shellBlock
		bad  int
	}{
		{"<(…) fenced sh", shellBlock{"sh", `kubectl create secret generic s --from-file=k=<(printf %s "$v")`}, 1},
		{"<(…) fenced shell", shellBlock{"shell", `diff <(a) <(b)`}, 1},
		{"a key made inside <(…)", shellBlock{"bash", "kubectl create secret generic s \\\n  --from-file=k.pem=<(openssl genpkey -algorithm RSA)"}, 1},
		{"a random value made inside <(…)", shellBlock{"bash", `kubectl create secret generic s --from-file=k=<(openssl rand -base64 48)`}, 1},
		{"both", shellBlock{"sh", `kubectl create secret generic s --from-file=k=<(openssl rand -base64 48)`}, 2},
		{"printf of a value made before", shellBlock{"bash", "v=$(openssl rand -base64 48) &&\nkubectl create secret generic s --from-file=k=<(printf '%s\\n' \"$v\")"}, 0},
		{"no substitution", shellBlock{"sh", `kubectl get pods`}, 0},
	} {
		if got := unsafeSubstitutions(c.b); len(got) != c.bad {
			t.Errorf("%s: unsafeSubstitutions = %q, want %d", c.name, got, c.bad)
		}
	}
}
