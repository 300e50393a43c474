package clients

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestTinyCacheTTLDoesNotCrash: NewSecretHasher with a CacheTTL under
// 100ns (CLIENT_SECRET_CACHE_TTL=50ns passes config validation) starts the
// expirable LRU's cleanup goroutine with time.NewTicker(ttl/100) = 0,
// which panics and kills the process (brk42). Run in a child process.
func TestTinyCacheTTLDoesNotCrash(t *testing.T) {
	if os.Getenv("BRK42_TINY_TTL_CHILD") == "1" {
		if _, err := NewSecretHasher(SecretHasherOptions{CacheTTL: 50 * time.Nanosecond}); err != nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestTinyCacheTTLDoesNotCrash$")
	cmd.Env = append(os.Environ(), "BRK42_TINY_TTL_CHILD=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("NewSecretHasher with CacheTTL 50ns: the process died: %v\n%.600s", err, out)
	}
}
