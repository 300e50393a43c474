package testharness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tollgate/tollgate/services/platform/config"
	"github.com/tollgate/tollgate/services/platform/redisx"
)

// The shared Cluster and Sentinel setups authenticate with an ACL user (the
// default user is off), so every test run against them also proves that
// the ACL user and password reach every node.
const (
	RedisACLUser     = "tollgate"
	RedisACLPassword = "tollgate-test-pw"
	// SentinelPassword is the sentinels' own password (requirepass).
	SentinelPassword = "sentinel-test-pw"
	// SentinelMaster is the sentinels' name of the master.
	SentinelMaster = "tollgate"
)

// RedisSetup is one Redis deployment tests run against: a standalone
// server, a Sentinel setup or a Cluster. Config gives each test its own key
// prefix, so tests can share one setup (start it in TestMain).
type RedisSetup interface {
	// Mode is config.RedisStandalone, RedisSentinel or RedisCluster.
	Mode() string
	// Config is a client configuration for t, with a per-test key prefix.
	Config(t testing.TB) config.Redis
	// Close stops every process of the setup.
	Close()
}

// RedisClient returns a connected client of s for t, closed when t ends.
func RedisClient(t testing.TB, s RedisSetup) *redisx.Client {
	t.Helper()
	c, err := redisx.New(s.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("redis ping (%s): %v", s.Mode(), err)
	}
	return c
}

// redisNode is one redis-server process (a data node or a sentinel) that
// is not tied to a test, so TestMain can share it.
type redisNode struct {
	Port int
	dir  string
	args []string

	mu  sync.Mutex
	cmd *exec.Cmd
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (n *redisNode) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.Port) }

func (n *redisNode) start() error {
	bin, err := RedisBinary()
	if err != nil {
		return err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	cmd := exec.Command(bin, n.args...)
	logPath := filepath.Join(n.dir, "redis.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr, cmd.Dir = logFile, logFile, n.dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	n.cmd = cmd
	if err := waitTCP(n.Addr(), 10*time.Second); err != nil {
		out, _ := os.ReadFile(logPath)
		return fmt.Errorf("redis-server on %s: %v\n%s", n.Addr(), err, out)
	}
	return nil
}

// kill stops the process as a crash would (SIGKILL) and reaps it.
func (n *redisNode) kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
	n.cmd = nil
}

func (n *redisNode) log() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "redis.log"))
	return string(b)
}

// aclArgs make the ACL user the only one that can log in.
func aclArgs() []string {
	return []string{
		"--user", RedisACLUser, "on", ">" + RedisACLPassword, "~*", "&*", "+@all",
		"--user", "default", "off",
		"--masteruser", RedisACLUser, "--masterauth", RedisACLPassword,
	}
}

func newDataNode(root string, extra ...string) (*redisNode, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, "node-"+strconv.Itoa(port))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	n := &redisNode{Port: port, dir: dir}
	n.args = append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
	}, aclArgs()...)
	n.args = append(n.args, extra...)
	return n, nil
}

func nodeClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, Username: RedisACLUser, Password: RedisACLPassword,
		DialTimeout: time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1})
}

// waitFor polls cond every 50ms until it holds or within passed.
func waitFor(within time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.Now().Add(within)
	for {
		ok, detail := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not reached within %s (last: %s)", what, within, detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// --- Cluster -----------------------------------------------------------------

// RedisCluster is a real Redis Cluster on loopback: three masters, each
// with one replica, all redis-server processes on free ports, created with
// redis-cli --cluster create --cluster-replicas 1. Its cluster-node-timeout
// is 1s, so a killed master's replica takes over within seconds.
type RedisCluster struct {
	Nodes []*redisNode
	dir   string
}

// NodeTimeout is the cluster's cluster-node-timeout (and the sentinels'
// down-after-milliseconds): how long a node must be unreachable before it
// is considered failed.
const NodeTimeout = time.Second

// NewRedisCluster starts a cluster in a temporary directory. Call Close
// when done (TestMain: once for the package).
func NewRedisCluster() (_ *RedisCluster, err error) {
	dir, err := os.MkdirTemp("", "tollgate-redis-cluster-")
	if err != nil {
		return nil, err
	}
	c := &RedisCluster{dir: dir}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	for range 6 {
		busPort, err := freePort()
		if err != nil {
			return nil, err
		}
		n, err := newDataNode(dir, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.Itoa(int(NodeTimeout.Milliseconds())), "--cluster-port", strconv.Itoa(busPort))
		if err != nil {
			return nil, err
		}
		if err := n.start(); err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, errors.New("redis-cli not found on PATH: install redis-tools (Debian/Ubuntu: apt-get install -y redis-server)")
	}
	args := []string{"--user", RedisACLUser, "--pass", RedisACLPassword, "--no-auth-warning", "--cluster", "create"}
	for _, n := range c.Nodes {
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %v\n%s", err, out)
	}
	return c, c.waitHealthy(30 * time.Second)
}

// waitHealthy waits until every running node reports cluster_state:ok and
// three masters, each with a connected replica, cover every slot.
func (c *RedisCluster) waitHealthy(within time.Duration) error {
	ctx := context.Background()
	return waitFor(within, "redis cluster healthy", func() (bool, string) {
		masters := 0
		for _, n := range c.Nodes {
			if !n.running() {
				continue
			}
			rc := nodeClient(n.Addr())
			info, err := rc.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") || !strings.Contains(info, "cluster_slots_ok:16384") {
				rc.Close()
				return false, fmt.Sprintf("%s: %v %s", n.Addr(), err, firstLine(info, "cluster_state"))
			}
			repl, err := rc.Info(ctx, "replication").Result()
			rc.Close()
			if err != nil {
				return false, err.Error()
			}
			if strings.Contains(repl, "role:master") {
				if !strings.Contains(repl, "connected_slaves:1") {
					return false, n.Addr() + " has no connected replica yet"
				}
				masters++
			} else if !strings.Contains(repl, "master_link_status:up") {
				return false, n.Addr() + " replica link not up"
			}
		}
		return masters == 3, fmt.Sprintf("%d masters with a replica", masters)
	})
}

func firstLine(info, prefix string) string {
	for _, l := range strings.Split(info, "\n") {
		if strings.HasPrefix(l, prefix) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

func (n *redisNode) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// Mode implements RedisSetup.
func (c *RedisCluster) Mode() string { return config.RedisCluster }

// URL is the cluster's REDIS_URL: every node as a seed, with the ACL user.
func (c *RedisCluster) URL() string {
	u := "redis://" + RedisACLUser + ":" + RedisACLPassword + "@" + c.Nodes[0].Addr()
	for i, n := range c.Nodes[1:] {
		sep := "&"
		if i == 0 {
			sep = "?"
		}
		u += sep + "addr=" + n.Addr()
	}
	return u
}

// Config implements RedisSetup.
func (c *RedisCluster) Config(t testing.TB) config.Redis {
	return config.Redis{Mode: config.RedisCluster, URL: c.URL(), KeyPrefix: "test:" + sanitize(t.Name()) + ":", CommandTimeout: time.Second}
}

// MasterOf returns the address of the master that serves key's slot now.
func (c *RedisCluster) MasterOf(key string) (string, error) {
	ctx := context.Background()
	for _, n := range c.Nodes {
		if !n.running() {
			continue
		}
		rc := nodeClient(n.Addr())
		slots, err := rc.ClusterSlots(ctx).Result()
		keySlot, kerr := rc.ClusterKeySlot(ctx, key).Result()
		rc.Close()
		if err != nil || kerr != nil {
			continue
		}
		slot := int(keySlot)
		for _, s := range slots {
			if slot >= int(s.Start) && slot <= int(s.End) && len(s.Nodes) > 0 {
				return s.Nodes[0].Addr, nil
			}
		}
	}
	return "", fmt.Errorf("no running node knows the master of %q", key)
}

// KillNode kills the node at addr (SIGKILL, as a crash) and returns a
// function that starts it again on the same port with its cluster state (it
// rejoins as a replica of whoever took over).
func (c *RedisCluster) KillNode(addr string) (restart func() error, err error) {
	for _, n := range c.Nodes {
		if n.Addr() == addr {
			n.kill()
			return func() error {
				if err := n.start(); err != nil {
					return err
				}
				return c.waitHealthy(60 * time.Second)
			}, nil
		}
	}
	return nil, fmt.Errorf("no cluster node at %s", addr)
}

// WaitHealthy waits until all slots are served and every master has a replica again.
func (c *RedisCluster) WaitHealthy(within time.Duration) error { return c.waitHealthy(within) }

// Close implements RedisSetup.
func (c *RedisCluster) Close() {
	for _, n := range c.Nodes {
		n.kill()
	}
	_ = os.RemoveAll(c.dir)
}

// --- Sentinel ----------------------------------------------------------------

// RedisSentinel is a real Sentinel setup on loopback: one master, one
// replica and three sentinels (quorum 2), all redis-server processes on
// free ports. The sentinels consider the master down after NodeTimeout.
type RedisSentinel struct {
	Master, Replica *redisNode
	Sentinels       []*redisNode
	dir             string
}

// NewRedisSentinel starts the setup in a temporary directory. Call Close
// when done (TestMain: once for the package).
func NewRedisSentinel() (_ *RedisSentinel, err error) {
	dir, err := os.MkdirTemp("", "tollgate-redis-sentinel-")
	if err != nil {
		return nil, err
	}
	s := &RedisSentinel{dir: dir}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.Master, err = newDataNode(dir); err != nil {
		return nil, err
	}
	if err := s.Master.start(); err != nil {
		return nil, err
	}
	if s.Replica, err = newDataNode(dir, "--replicaof", "127.0.0.1", strconv.Itoa(s.Master.Port)); err != nil {
		return nil, err
	}
	if err := s.Replica.start(); err != nil {
		return nil, err
	}
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		sdir := filepath.Join(dir, "sentinel-"+strconv.Itoa(port))
		if err := os.MkdirAll(sdir, 0o700); err != nil {
			return nil, err
		}
		conf := filepath.Join(sdir, "sentinel.conf")
		body := fmt.Sprintf(`port %d
bind 127.0.0.1
daemonize no
loglevel warning
dir %s
requirepass %s
sentinel monitor %s 127.0.0.1 %d 2
sentinel auth-user %s %s
sentinel auth-pass %s %s
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s 10000
sentinel parallel-syncs %s 1
`, port, sdir, SentinelPassword, SentinelMaster, s.Master.Port, SentinelMaster, RedisACLUser, SentinelMaster, RedisACLPassword,
			SentinelMaster, NodeTimeout.Milliseconds(), SentinelMaster, SentinelMaster)
		// Sentinels authenticate to each other with their own password.
		body += "sentinel sentinel-pass " + SentinelPassword + "\n"
		if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
			return nil, err
		}
		n := &redisNode{Port: port, dir: sdir, args: []string{conf, "--sentinel"}}
		if err := n.start(); err != nil {
			return nil, err
		}
		s.Sentinels = append(s.Sentinels, n)
	}
	return s, s.WaitHealthy(30 * time.Second)
}

func sentinelClient(addr string) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: addr, Password: SentinelPassword, DialTimeout: time.Second, ReadTimeout: 2 * time.Second, MaxRetries: -1})
}

// MasterAddr is the master's address as the first sentinel that answers sees it.
func (s *RedisSentinel) MasterAddr() (string, error) {
	ctx := context.Background()
	var last error
	for _, n := range s.Sentinels {
		sc := sentinelClient(n.Addr())
		a, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
		sc.Close()
		if err == nil && len(a) == 2 {
			return net.JoinHostPort(a[0], a[1]), nil
		}
		last = err
	}
	return "", fmt.Errorf("no sentinel names the master: %v", last)
}

// WaitHealthy waits until every sentinel knows the other two and a
// replica with a live link to the master.
func (s *RedisSentinel) WaitHealthy(within time.Duration) error {
	ctx := context.Background()
	return waitFor(within, "redis sentinel setup healthy", func() (bool, string) {
		for _, n := range s.Sentinels {
			sc := sentinelClient(n.Addr())
			others, err := sc.Sentinels(ctx, SentinelMaster).Result()
			if err != nil || len(others) != 2 {
				sc.Close()
				return false, fmt.Sprintf("sentinel %s knows %d others (%v)", n.Addr(), len(others), err)
			}
			reps, err := sc.Replicas(ctx, SentinelMaster).Result()
			sc.Close()
			if err != nil || len(reps) == 0 {
				return false, fmt.Sprintf("sentinel %s knows no replica (%v)", n.Addr(), err)
			}
			live := false
			for _, r := range reps {
				if r["master-link-status"] == "ok" && !strings.Contains(r["flags"], "down") {
					live = true
				}
			}
			if !live {
				return false, fmt.Sprintf("sentinel %s: no replica with a live link", n.Addr())
			}
		}
		return true, ""
	})
}

// Mode implements RedisSetup.
func (s *RedisSentinel) Mode() string { return config.RedisSentinel }

// URL is the setup's REDIS_URL in go-redis's failover form: the sentinels
// with their password, the master's name and the ACL user of the data nodes.
func (s *RedisSentinel) URL() string {
	u := "redis://:" + SentinelPassword + "@" + s.Sentinels[0].Addr() + "/0?master_name=" + SentinelMaster
	for _, n := range s.Sentinels[1:] {
		u += "&addr=" + n.Addr()
	}
	return u + "&username=" + RedisACLUser + "&password=" + RedisACLPassword
}

// Config implements RedisSetup.
func (s *RedisSentinel) Config(t testing.TB) config.Redis {
	return config.Redis{Mode: config.RedisSentinel, URL: s.URL(), KeyPrefix: "test:" + sanitize(t.Name()) + ":", CommandTimeout: time.Second}
}

// KillMaster kills the current master (SIGKILL) and returns its address.
// The sentinels promote the replica after NodeTimeout plus an election.
func (s *RedisSentinel) KillMaster() (string, error) {
	addr, err := s.MasterAddr()
	if err != nil {
		return "", err
	}
	for _, n := range []*redisNode{s.Master, s.Replica} {
		if n.Addr() == addr {
			n.kill()
			return addr, nil
		}
	}
	return "", fmt.Errorf("master %s is not a node of this setup", addr)
}

// Restart starts the data node at addr again (after KillMaster); the
// sentinels turn it into a replica of the new master.
func (s *RedisSentinel) Restart(addr string) error {
	for _, n := range []*redisNode{s.Master, s.Replica} {
		if n.Addr() == addr {
			if err := n.start(); err != nil {
				return err
			}
			return s.WaitHealthy(60 * time.Second)
		}
	}
	return fmt.Errorf("no data node at %s", addr)
}

// Close implements RedisSetup.
func (s *RedisSentinel) Close() {
	for _, n := range s.Sentinels {
		n.kill()
	}
	for _, n := range []*redisNode{s.Master, s.Replica} {
		if n != nil {
			n.kill()
		}
	}
	_ = os.RemoveAll(s.dir)
}

// --- Standalone ----------------------------------------------------------------

// RedisStandalone is one shared redis-server (no ACL user: the default
// user, as the per-test StartRedis).
type RedisStandalone struct{ n *redisNode }

// NewRedisStandalone starts one server in a temporary directory.
func NewRedisStandalone() (*RedisStandalone, error) {
	dir, err := os.MkdirTemp("", "tollgate-redis-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	n := &redisNode{Port: port, dir: dir, args: []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning",
	}}
	if err := n.start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &RedisStandalone{n: n}, nil
}

// Mode implements RedisSetup.
func (s *RedisStandalone) Mode() string { return config.RedisStandalone }

// URL is the server's redis:// URL.
func (s *RedisStandalone) URL() string { return "redis://" + s.n.Addr() + "/0" }

// Config implements RedisSetup.
func (s *RedisStandalone) Config(t testing.TB) config.Redis {
	return config.Redis{Mode: config.RedisStandalone, URL: s.URL(), KeyPrefix: "test:" + sanitize(t.Name()) + ":", CommandTimeout: time.Second}
}

// Close implements RedisSetup.
func (s *RedisStandalone) Close() { s.n.kill(); _ = os.RemoveAll(s.n.dir) }

// --- For TestMain ----------------------------------------------------------------

// RedisSetups is one of each deployment: a standalone server, a Sentinel
// setup and a Cluster.
type RedisSetups []RedisSetup

// MainWithRedisSetups is the TestMain of a package whose contract tests run
// against every deployment: it starts them into *setups, runs the tests,
// closes the deployments and exits with the tests' status (1 when the
// deployments cannot start).
func MainWithRedisSetups(m *testing.M, setups *RedisSetups) {
	var err error
	if *setups, err = StartRedisSetups(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	setups.Close()
	os.Exit(code)
}

// StartRedisSetups starts the three deployments (Sentinel and Cluster in
// parallel). Call it once in a package's TestMain and Close the result
// after m.Run: contract tests then run in every mode with t.Run(s.Mode(), …),
// each test keeping to its own key prefix.
func StartRedisSetups() (RedisSetups, error) {
	var (
		wg                sync.WaitGroup
		sentinel          *RedisSentinel
		cluster           *RedisCluster
		errSent, errClust error
	)
	wg.Add(2)
	go func() { defer wg.Done(); sentinel, errSent = NewRedisSentinel() }()
	go func() { defer wg.Done(); cluster, errClust = NewRedisCluster() }()
	standalone, errStand := NewRedisStandalone()
	wg.Wait()
	out := RedisSetups{}
	if standalone != nil {
		out = append(out, standalone)
	}
	if sentinel != nil {
		out = append(out, sentinel)
	}
	if cluster != nil {
		out = append(out, cluster)
	}
	if err := errors.Join(errStand, errSent, errClust); err != nil {
		out.Close()
		return nil, err
	}
	return out, nil
}

// Close stops every setup.
func (ss RedisSetups) Close() {
	for _, s := range ss {
		s.Close()
	}
}

// RedisKeys lists the keys that hold c's prefix (redis_rate puts its own
// "rate:" before it), on every master of a cluster.
func RedisKeys(t testing.TB, c *redisx.Client) []string {
	t.Helper()
	ctx := context.Background()
	var (
		mu   sync.Mutex
		keys []string
	)
	scan := func(ctx context.Context, n redis.Cmdable) error {
		ks, err := n.Keys(ctx, "*"+c.Prefix()+"*").Result()
		mu.Lock()
		keys = append(keys, ks...)
		mu.Unlock()
		return err
	}
	var err error
	if cc, ok := c.UniversalClient.(*redis.ClusterClient); ok {
		err = cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error { return scan(ctx, n) })
	} else {
		err = scan(ctx, c.UniversalClient)
	}
	if err != nil {
		t.Fatalf("list keys: %v", err)
	}
	return keys
}
