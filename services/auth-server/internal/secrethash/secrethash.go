// Package secrethash is `auth-server hash-client-secret`: it makes a client
// secret for the static registry (CLIENTS_FILE) and its `$hmac-sha256$`
// hash under the CLIENT_SECRET_HMAC_KEY the auth-server reads, for clients
// whose secret nobody chooses — a GPT Action's, typed into the GPT editor.
// A secret a person chooses is stored as bcrypt instead
// (docs/operations/client-registry.md).
package secrethash

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/tollgate/tollgate/services/auth-server/internal/clients"
	"github.com/tollgate/tollgate/services/auth-server/internal/config"
)

// MinSecretLen is the shortest secret -stdin hashes: 43 base64url
// characters, 256 random bits (what `secrets.token_urlsafe(32)` makes). A
// keyed fast hash is as strong as bcrypt only for a secret that cannot be
// guessed.
const MinSecretLen = 43

// Main runs `auth-server hash-client-secret [-stdin]` with the key of
// getenv's CLIENT_SECRET_HMAC_KEY or CLIENT_SECRET_HMAC_KEY_FILE. It prints
// a new random secret (260 bits, as dynamic registration makes) and its
// hash, one a line; with -stdin it reads a secret (one line) from in and
// prints only its hash — to hash a secret you kept under a new key.
func Main(args []string, getenv func(string) string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("hash-client-secret", flag.ContinueOnError)
	// The flag package's own messages quote the argument, which may be a
	// secret (review41: `-<secret>`, `-stdin=<secret>`): they go nowhere,
	// and a parse error is answered without it.
	fs.SetOutput(io.Discard)
	usage := func() {
		fmt.Fprint(out, `usage: CLIENT_SECRET_HMAC_KEY_FILE=<key file> auth-server hash-client-secret [-stdin]

Prints a new random client secret, then its $hmac-sha256$ hash under
CLIENT_SECRET_HMAC_KEY (or the file CLIENT_SECRET_HMAC_KEY_FILE names), the
key the auth-server is given. The hash goes into the client registry
(client_secret_hash); the secret to the client, and nowhere else.

`)
		fs.SetOutput(out)
		fs.PrintDefaults()
	}
	fs.Usage = func() {}
	stdin := fs.Bool("stdin", false, fmt.Sprintf("hash the secret read from standard input (one line, at least %d characters) instead of making one; print only its hash", MinSecretLen))
	if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
		usage()
		return nil
	} else if err != nil {
		return errors.New("hash-client-secret: a flag it does not take, or a bad flag value (not echoed: it may be a secret); -h lists its flags")
	}
	if fs.NArg() > 0 {
		// Not echoed: it may be a secret.
		return errors.New("hash-client-secret takes no arguments: the secret is made, or read with -stdin, never given on the command line")
	}
	key, err := config.LoadClientSecretKey(getenv)
	if err != nil {
		return err
	}
	h, err := clients.NewSecretHasher(clients.SecretHasherOptions{Key: []byte(key), CacheSize: -1})
	if err != nil {
		return err
	}
	secret := rand.Text() + rand.Text()
	if *stdin {
		if secret, err = readSecret(in); err != nil {
			return err
		}
	}
	hash, err := h.Hash(context.Background(), []byte(secret))
	if err != nil {
		return err
	}
	if !*stdin {
		fmt.Fprintln(out, secret)
	}
	_, err = fmt.Fprintln(out, string(hash))
	return err
}

// readSecret reads one line: the secret, without its line break.
func readSecret(in io.Reader) (string, error) {
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the secret from standard input: %w", err)
	}
	secret := strings.TrimRight(line, "\r\n")
	switch {
	case secret == "":
		return "", errors.New("-stdin: no secret on standard input")
	case strings.TrimSpace(secret) != secret:
		return "", errors.New("-stdin: the secret begins or ends with white space; a client sends it as it is, so give it without")
	case len(secret) < MinSecretLen:
		return "", fmt.Errorf("-stdin: the secret has %d characters, fewer than %d: $hmac-sha256$ is for long random secrets; "+
			"store a secret a person chose as bcrypt (docs/operations/client-registry.md)", len(secret), MinSecretLen)
	}
	return secret, nil
}
