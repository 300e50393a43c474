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
	"syscall"
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
	// Config is a client configuration for t, with t's key prefix
	// (KeyPrefix: per test and per run of it).
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

// aclArgs make the ACL user the only one that can log in.
func aclArgs() []string {
	return []string{
		"--user", RedisACLUser, "on", ">" + RedisACLPassword, "~*", "&*", "+@all",
		"--user", "default", "off",
		"--masteruser", RedisACLUser, "--masterauth", RedisACLPassword,
	}
}

// newDataNode is a data node (master, replica or cluster node) that logs
// in with the ACL user, in its own directory under root; extra adds to its
// command line. Its ports are picked when it starts (startFresh).
func newDataNode(root, name string, tls *RedisTLS, extra func(n *redisNode) []string) (*redisNode, error) {
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	n := &redisNode{dir: dir, login: redis.Options{Username: RedisACLUser, Password: RedisACLPassword}}
	if tls != nil {
		n.login.TLSConfig = tls.ClientConfig()
	}
	n.argsFor = func(n *redisNode) ([]string, error) {
		args := append(serverArgs(n, tls), aclArgs()...)
		if tls != nil {
			args = append(args, "--tls-replication", "yes")
		}
		if extra != nil {
			args = append(args, extra(n)...)
		}
		return args, nil
	}
	return n, nil
}

// client is a connection to the node as the harness logs in to it.
func (n *redisNode) client() *redis.Client {
	o := n.login
	o.Addr, o.DialTimeout, o.ReadTimeout, o.MaxRetries = n.Addr(), time.Second, 2*time.Second, -1
	return redis.NewClient(&o)
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
	// TLS is set when every node serves TLS only (NewRedisClusterTLS).
	TLS *RedisTLS
	dir string
}

// NodeTimeout is the cluster's cluster-node-timeout (and the sentinels'
// down-after-milliseconds): how long a node must be unreachable before it
// is considered failed.
const NodeTimeout = time.Second

// NewRedisCluster starts a cluster in a temporary directory. Call Close
// when done (TestMain: once for the package).
func NewRedisCluster() (*RedisCluster, error) { return newRedisCluster(nil) }

// NewRedisClusterTLS starts a cluster whose nodes serve TLS only, with
// certificates of tls: clients, replication and the cluster bus
// (tls-cluster yes) all use TLS.
func NewRedisClusterTLS(tls *RedisTLS) (*RedisCluster, error) { return newRedisCluster(tls) }

func newRedisCluster(tls *RedisTLS) (_ *RedisCluster, err error) {
	dir, err := os.MkdirTemp("", "tollgate-redis-cluster-")
	if err != nil {
		return nil, err
	}
	c := &RedisCluster{dir: dir, TLS: tls}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	for i := range 6 {
		n, err := newDataNode(dir, "node-"+strconv.Itoa(i), tls, func(n *redisNode) []string {
			args := []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
				"--cluster-node-timeout", strconv.Itoa(int(NodeTimeout.Milliseconds())), "--cluster-port", strconv.Itoa(n.bus)}
			if tls != nil {
				args = append(args, "--tls-cluster", "yes")
			}
			return args
		})
		if err != nil {
			return nil, err
		}
		n.bus = -1 // a cluster node: startFresh picks its bus port too
		c.Nodes = append(c.Nodes, n)
		if err := n.startFresh(); err != nil {
			return nil, err
		}
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, errors.New("redis-cli not found on PATH: install redis-tools (Debian/Ubuntu: apt-get install -y redis-server)")
	}
	args := []string{"--user", RedisACLUser, "--pass", RedisACLPassword, "--no-auth-warning"}
	if tls != nil {
		args = append(args, "--tls", "--cacert", tls.CAFile)
	}
	args = append(args, "--cluster", "create")
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
			rc := n.client()
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

// Mode implements RedisSetup.
func (c *RedisCluster) Mode() string { return config.RedisCluster }

// URL is the cluster's REDIS_URL: every node as a seed, with the ACL user
// (rediss:// with TLS).
func (c *RedisCluster) URL() string {
	u := scheme(c.TLS) + "://" + RedisACLUser + ":" + RedisACLPassword + "@" + c.Nodes[0].Addr()
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
	return setupConfig(t, config.RedisCluster, c.URL(), c.TLS)
}

// MasterOf returns the address of the master that serves key's slot now.
func (c *RedisCluster) MasterOf(key string) (string, error) {
	ctx := context.Background()
	for _, n := range c.Nodes {
		if !n.running() {
			continue
		}
		rc := n.client()
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
				if err := n.restart(); err != nil {
					return err
				}
				return c.waitHealthy(60 * time.Second)
			}, nil
		}
	}
	return nil, fmt.Errorf("no cluster node at %s", addr)
}

// PauseNode stops the node at addr with SIGSTOP, as a Redis that hangs:
// the kernel still accepts connections to it and buffers what clients
// write, but nothing is read or answered until resume (SIGCONT), when the
// node runs what it was sent meanwhile — including commands of clients
// that gave up and closed their connection. A master paused for longer
// than NodeTimeout plus an election is failed over by its replica, and
// rejoins as a replica once resumed (WaitHealthy). resume may be called
// more than once; register it with t.Cleanup so no node is left stopped.
func (c *RedisCluster) PauseNode(addr string) (resume func() error, err error) {
	for _, n := range c.Nodes {
		if n.Addr() == addr {
			if err := n.signal(syscall.SIGSTOP); err != nil {
				return nil, fmt.Errorf("pause %s: %w", addr, err)
			}
			return func() error { return n.signal(syscall.SIGCONT) }, nil
		}
	}
	return nil, fmt.Errorf("no cluster node at %s", addr)
}

// WaitHealthy waits until all slots are served and every master has a replica again.
func (c *RedisCluster) WaitHealthy(within time.Duration) error { return c.waitHealthy(within) }

// Close implements RedisSetup.
func (c *RedisCluster) Close() {
	for _, n := range c.Nodes {
		n.close()
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
	// TLS is set when every process serves TLS only (NewRedisSentinelTLS).
	TLS *RedisTLS
	dir string
}

// NewRedisSentinel starts the setup in a temporary directory. Call Close
// when done (TestMain: once for the package).
func NewRedisSentinel() (*RedisSentinel, error) { return newRedisSentinel(nil) }

// NewRedisSentinelTLS starts a setup whose data nodes and sentinels serve
// TLS only, with certificates of tls: clients, replication and the
// sentinels' links to the nodes and to each other (tls-replication yes)
// all use TLS.
func NewRedisSentinelTLS(tls *RedisTLS) (*RedisSentinel, error) { return newRedisSentinel(tls) }

func newRedisSentinel(tls *RedisTLS) (_ *RedisSentinel, err error) {
	dir, err := os.MkdirTemp("", "tollgate-redis-sentinel-")
	if err != nil {
		return nil, err
	}
	s := &RedisSentinel{dir: dir, TLS: tls}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.Master, err = newDataNode(dir, "master", tls, nil); err != nil {
		return nil, err
	}
	if err := s.Master.startFresh(); err != nil {
		return nil, err
	}
	masterPort := strconv.Itoa(s.Master.Port)
	if s.Replica, err = newDataNode(dir, "replica", tls, func(*redisNode) []string {
		return []string{"--replicaof", "127.0.0.1", masterPort}
	}); err != nil {
		return nil, err
	}
	if err := s.Replica.startFresh(); err != nil {
		return nil, err
	}
	for i := range 3 {
		sdir := filepath.Join(dir, "sentinel-"+strconv.Itoa(i))
		if err := os.MkdirAll(sdir, 0o700); err != nil {
			return nil, err
		}
		n := &redisNode{dir: sdir, login: redis.Options{Password: SentinelPassword}}
		if tls != nil {
			n.login.TLSConfig = tls.ClientConfig()
		}
		n.argsFor = func(n *redisNode) ([]string, error) {
			conf := filepath.Join(n.dir, "sentinel.conf")
			body := "port " + strconv.Itoa(n.Port) + "\n"
			if tls != nil {
				body = "port 0\ntls-port " + strconv.Itoa(n.Port) + "\n" + tls.conf() + "tls-replication yes\n"
			}
			body += fmt.Sprintf(`bind 127.0.0.1
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
`, n.dir, SentinelPassword, SentinelMaster, s.Master.Port, SentinelMaster, RedisACLUser, SentinelMaster, RedisACLPassword,
				SentinelMaster, NodeTimeout.Milliseconds(), SentinelMaster, SentinelMaster)
			// Sentinels authenticate to each other with their own password.
			body += "sentinel sentinel-pass " + SentinelPassword + "\n"
			return []string{conf, "--sentinel"}, os.WriteFile(conf, []byte(body), 0o600)
		}
		s.Sentinels = append(s.Sentinels, n)
		if err := n.startFresh(); err != nil {
			return nil, err
		}
	}
	return s, s.WaitHealthy(30 * time.Second)
}

func (s *RedisSentinel) sentinelClient(n *redisNode) *redis.SentinelClient {
	o := n.login
	o.Addr, o.DialTimeout, o.ReadTimeout, o.MaxRetries = n.Addr(), time.Second, 2*time.Second, -1
	return redis.NewSentinelClient(&o)
}

// MasterAddr is the master's address as the first sentinel that answers sees it.
func (s *RedisSentinel) MasterAddr() (string, error) {
	ctx := context.Background()
	var last error
	for _, n := range s.Sentinels {
		sc := s.sentinelClient(n)
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
			sc := s.sentinelClient(n)
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
// with their password, the master's name and the ACL user of the data nodes
// (rediss:// with TLS).
func (s *RedisSentinel) URL() string {
	u := scheme(s.TLS) + "://:" + SentinelPassword + "@" + s.Sentinels[0].Addr() + "/0?master_name=" + SentinelMaster
	for _, n := range s.Sentinels[1:] {
		u += "&addr=" + n.Addr()
	}
	return u + "&username=" + RedisACLUser + "&password=" + RedisACLPassword
}

// Config implements RedisSetup.
func (s *RedisSentinel) Config(t testing.TB) config.Redis {
	return setupConfig(t, config.RedisSentinel, s.URL(), s.TLS)
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
			if err := n.restart(); err != nil {
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
		n.close()
	}
	for _, n := range []*redisNode{s.Master, s.Replica} {
		if n != nil {
			n.close()
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
	n := &redisNode{dir: dir, argsFor: func(n *redisNode) ([]string, error) { return serverArgs(n, nil), nil }}
	if err := n.startFresh(); err != nil {
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
	return setupConfig(t, config.RedisStandalone, s.URL(), nil)
}

// Close implements RedisSetup.
func (s *RedisStandalone) Close() { s.n.close(); _ = os.RemoveAll(s.n.dir) }

// scheme is the URL scheme for a deployment with or without TLS.
func scheme(tls *RedisTLS) string {
	if tls != nil {
		return "rediss"
	}
	return "redis"
}

// setupConfig is a shared deployment's client configuration for t: its own
// key prefix (KeyPrefix), the tests' command and dial timeouts (RedisCommandTimeout,
// RedisDialTimeout) and the CA file with TLS.
func setupConfig(t testing.TB, mode, url string, tls *RedisTLS) config.Redis {
	c := config.Redis{Mode: mode, URL: url, KeyPrefix: KeyPrefix(t), CommandTimeout: time.Second, DialTimeout: time.Second}
	if tls != nil {
		c.TLSCAFile = tls.CAFile
	}
	return c
}

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

// Clients hands a contract test new clients of one deployment, as the
// replicas of a service hold them: each Client is a connection pool of its
// own with the test's key prefix, closed when the test ends.
type Clients struct {
	t     testing.TB
	setup RedisSetup
}

// Client is a new connected client (RedisClient).
func (c Clients) Client() *redisx.Client { return RedisClient(c.t, c.setup) }

// Setup is the deployment the clients reach.
func (c Clients) Setup() RedisSetup { return c.setup }

// Run runs test once per deployment, as a subtest named after its mode.
func (ss RedisSetups) Run(t *testing.T, test func(t *testing.T, r Clients)) {
	t.Helper()
	for _, s := range ss {
		t.Run(s.Mode(), func(t *testing.T) { test(t, Clients{t, s}) })
	}
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
