.PHONY: test gen dev build bench chaos image
test:    ; scripts/test.sh
gen:     ; scripts/gen.sh
dev:     ; go run ./cmd/hiveqd dev
build:   ; CGO_ENABLED=0 go build -o bin/ ./cmd/...
chaos:   ; CHAOS=1 scripts/test.sh ./tests/...
bench:   ; go run ./tests/bench
image:   ; scripts/image.sh
