package zkconn

import (
	"testing"
	"time"
)

func TestCapped(t *testing.T) {
	c := &Capped{Limit: time.Second}
	if got := c.capped(time.Time{}); !got.IsZero() {
		t.Errorf("no deadline became %v", got)
	}
	if near := time.Now().Add(50 * time.Millisecond); !c.capped(near).Equal(near) {
		t.Errorf("a deadline within the cap moved")
	}
	far := time.Now().Add(time.Hour)
	if got := c.capped(far); !got.Before(time.Now().Add(2 * time.Second)) {
		t.Errorf("an hour away became %v", got)
	}
	if got := (&Capped{}).capped(far); !got.Equal(far) {
		t.Errorf("no cap moved the deadline to %v", got)
	}
}
