// Module tests holds the chart, image and Tiltfile checks of `make test-charts`:
// helm lint and helm-unittest, golden renders, a real control plane
// (etcd, kube-apiserver, controller-manager, scheduler, kwok) and image checks.
module github.com/tollgate/tollgate/charts/tests

go 1.26

require sigs.k8s.io/yaml v1.4.0

require github.com/google/go-cmp v0.7.0 // indirect
