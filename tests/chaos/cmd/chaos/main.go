// Command chaos runs hiveqd's chaos suite and prints its report:
//
//	go run ./tests/chaos/cmd/chaos [-duration 20m] [-seed N] [-json out.json]
//
// It exits 1 when an invariant broke or something leaked.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hiveqd/hiveqd/tests/chaos"
)

func main() {
	duration := flag.Duration("duration", 5*time.Minute, "how long faults are injected")
	seed := flag.Int64("seed", 0, "seed of the fault schedule and workload (0: from the clock)")
	jsonOut := flag.String("json", "", "also write the report as JSON to this file")
	race := flag.Bool("race", true, "build hiveqd with the race detector")
	kinds := flag.String("kinds", "", "comma-separated fault kinds (default all: "+strings.Join(chaos.AllKinds, ",")+")")
	keep := flag.Bool("keep", false, "keep the run directory (logs) instead of removing it")
	hiveqdBin := flag.String("hiveqd", "", "use this hiveqd binary instead of building one (with -hs2sim)")
	simBin := flag.String("hs2sim", "", "use this hs2sim binary instead of building one (with -hiveqd)")
	flag.Parse()
	if *seed == 0 {
		*seed = time.Now().UnixNano()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "hiveqd-chaos-")
	if err != nil {
		log.Fatal(err)
	}
	if *keep {
		fmt.Println("run directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	bins := map[string]string{"hiveqd": *hiveqdBin, "hs2sim": *simBin}
	if *hiveqdBin == "" || *simBin == "" {
		log.Printf("seed %d, building", *seed)
		bctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		bins, err = chaos.BuildBinaries(bctx, dir, *race)
		cancel()
		if err != nil {
			log.Fatal(err)
		}
	}
	opts := chaos.Options{Bins: bins, Dir: dir, Duration: *duration, Seed: *seed, Logf: log.Printf}
	if *kinds != "" {
		opts.Kinds = strings.Split(*kinds, ",")
	}
	rep, err := chaos.Run(ctx, opts)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(rep.Summary())
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*jsonOut, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
	if len(rep.Violations) > 0 || len(rep.Leaks) > 0 {
		os.Exit(1)
	}
}
