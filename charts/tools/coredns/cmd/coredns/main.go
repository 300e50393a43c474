// Command coredns is CoreDNS with only the plugins the cluster end-to-end
// test's cluster DNS uses (the Corefile in charts/tests/realcluster_test.go):
// CoreDNS's documented way to trim a build is a main package that imports
// the plugins it wants, as its own core/plugin/zplugin.go does for all of them.
package main

import (
	_ "github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() {
	coremain.Run()
}
