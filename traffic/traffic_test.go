package traffic

import (
	"errors"
	"testing"
	"time"

	"github.com/hiveqd/hiveqd/hs2"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestObserver(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	o := New(clk.now)
	if a := o.Activity("hive", "h:1"); !a.LastAnswer.IsZero() || a.Pending != 0 {
		t.Fatalf("empty observer: %+v", a)
	}
	d1 := o.CallStarted("hive", "h:1")
	clk.t = clk.t.Add(time.Second)
	d2 := o.CallStarted("hive", "h:1")
	a := o.Activity("hive", "h:1")
	if a.Pending != 2 || !a.OldestPending.Equal(time.Unix(1000, 0)) || !a.LastAnswer.IsZero() {
		t.Fatalf("two pending: %+v", a)
	}
	clk.t = clk.t.Add(time.Second)
	d1(errors.New("read tcp: i/o timeout")) // no answer
	a = o.Activity("hive", "h:1")
	if a.Pending != 1 || !a.LastAnswer.IsZero() || !a.OldestPending.Equal(time.Unix(1001, 0)) {
		t.Fatalf("after a timeout: %+v", a)
	}
	d2(&hs2.ServerError{Message: "Invalid OperationHandle"}) // the server answered
	d2(nil)                                                  // a second call is ignored
	a = o.Activity("hive", "h:1")
	if a.Pending != 0 || !a.LastAnswer.Equal(time.Unix(1002, 0)) {
		t.Fatalf("after an answer: %+v", a)
	}
	if other := o.Activity("other", "h:1"); !other.LastAnswer.IsZero() {
		t.Fatalf("connectors are apart: %+v", other)
	}
}

func TestLocalAndRemote(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	a := New(clk.now)
	a.CallStarted("hive", "h:1")(nil)
	clk.t = clk.t.Add(300 * time.Millisecond)
	a.CallStarted("hive", "h:1")
	s, changed := a.Local()
	if !changed || len(s.Servers) != 1 || s.Servers[0].AnswerAgeMS != 300 || s.Servers[0].OldestPendingMS != 0 || s.Servers[0].Pending != 1 {
		t.Fatalf("summary %+v changed=%v", s, changed)
	}
	if _, changed := a.Local(); changed {
		t.Fatal("nothing happened since the last summary")
	}

	// Another replica, its clock far off: only ages travel.
	bclk := &fakeClock{t: time.Unix(5000, 0)}
	b := New(bclk.now)
	b.SetRemote("r1", &s)
	got := b.Activity("hive", "h:1")
	if !got.LastAnswer.Equal(time.Unix(5000, 0).Add(-300*time.Millisecond)) || got.Pending != 1 {
		t.Fatalf("remote activity %+v", got)
	}
	b.CallStarted("hive", "h:1")(nil)
	if got := b.Activity("hive", "h:1"); !got.LastAnswer.Equal(time.Unix(5000, 0)) || got.Pending != 1 {
		t.Fatalf("merged activity %+v", got)
	}
	b.SetRemote("r1", nil)
	if got := b.Activity("hive", "h:1"); got.Pending != 0 {
		t.Fatalf("forgotten replica still counted: %+v", got)
	}
}
