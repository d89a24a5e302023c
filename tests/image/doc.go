// Package image builds the hiveqd container image (make image:
// deploy/Containerfile on scratch) and runs it with podman: `hiveqd dev`
// read-only as uid 65532 answering grpcurl through a published port, and
// three replicas on the host network electing a leader in etcd and failing
// over. It is the slower "image" suite, behind the build tag:
//
//	go test -tags image -count=1 ./tests/image/
//
// .ci/run runs it after the default suite; it skips, saying why, where
// podman cannot run.
package image
