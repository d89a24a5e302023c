package main

import "testing"

func TestMeets(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		op   string
		goal float64
		want bool
	}{
		{1.0000000000000029, "<=", 1, true}, // equal readings, rounded apart
		{0.9999999999999971, ">=", 1, true},
		{1.001, "<=", 1, false},
		{0.999, ">=", 1, false},
		{0.978, "<=", 1, true},
		{2.72, ">=", 1.5, true},
		{1, ">", 1, false},
		{1.0000000000000029, ">", 1, false},
		{3, "==", 3, true},
		{0.3, "<=", 0.3, true},
		{0.47, "<=", 0.3, false},
	} {
		if got := meets(tc.v, tc.op, tc.goal); got != tc.want {
			t.Errorf("meets(%v %s %v) = %v, want %v", tc.v, tc.op, tc.goal, got, tc.want)
		}
	}
}
