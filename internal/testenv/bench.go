package testenv

import (
	"syscall"
	"testing"
	"time"
)

// ProcessCPU is the CPU time this process has used so far (user and
// system): on a shared machine a steadier measure of work than the wall
// clock.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// MeasureCPU runs run b.N times with the timer running and allocations
// reported, then stops the timer and reports the process's CPU time per
// run as "cpu-ns/op" (everything the process did meanwhile, an in-process
// simulator included).
func MeasureCPU(b *testing.B, run func()) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := ProcessCPU()
	for range b.N {
		run()
	}
	b.StopTimer()
	b.ReportMetric(float64(ProcessCPU()-cpu)/float64(b.N), "cpu-ns/op")
}
