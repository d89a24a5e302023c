// Package deploy holds hiveqd's deployment files: Kubernetes manifests
// (kubernetes/, a kustomization), a docker-compose cluster
// (docker-compose.yml), the container image (Containerfile), the Helm chart
// (helm/hiveqd) and the alert rules and dashboard (monitoring/). Its tests
// check them against the Kubernetes API types and hiveqd's own flags and
// configuration.
package deploy
