// Module tests holds the chart, image and Tiltfile checks of `make test-charts`:
// helm lint and helm-unittest, golden renders, a real control plane
// (etcd, kube-apiserver, controller-manager, scheduler, kwok) and image checks.
module github.com/tollgate/tollgate/charts/tests

go 1.26

require (
	github.com/google/go-containerregistry v0.22.1
	sigs.k8s.io/yaml v1.4.0
)

require (
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
)
