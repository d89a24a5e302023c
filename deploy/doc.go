// Package deploy holds hiveqd's deployment files: Kubernetes manifests
// (kubernetes/, a kustomization), a docker-compose cluster
// (docker-compose.yml) and the container image (Dockerfile). Its tests
// check them against the Kubernetes API types and hiveqd's own flags and
// configuration.
package deploy
