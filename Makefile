.PHONY: test gen dev build bench chaos image
test:    ; scripts/test.sh
gen:     ; scripts/gen.sh
dev:     ; go run ./cmd/hiveqd dev
# VERSION stamps `hiveqd version` for builds without VCS information.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
build:   ; CGO_ENABLED=0 go build -ldflags "-X main.buildVersion=$(VERSION)" -o bin/ ./cmd/...
chaos:   ; CHAOS=1 scripts/test.sh ./tests/...
bench:   ; go run ./tests/bench
image:   ; scripts/image.sh
