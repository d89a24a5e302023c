package query

import "testing"

func TestCheckOwner(t *testing.T) {
	r := &run{id: "q1", user: "alice"}
	for _, tc := range []struct {
		c  Caller
		ok bool
	}{
		{Caller{User: "alice"}, true},
		{Caller{User: "bob"}, false},
		{Caller{User: ""}, false},
		{Caller{User: "bob", Admin: true}, true},
		{Caller{User: "", Admin: true}, true},
	} {
		err := checkOwner(r, tc.c)
		if (err == nil) != tc.ok {
			t.Errorf("%+v: %v, want ok=%v", tc.c, err, tc.ok)
		}
		if err != nil && (err.Code != PermissionDenied || err.Reason != ReasonNotQueryOwner || err.Metadata[MetaQueryID] != "q1") {
			t.Errorf("%+v: %+v", tc.c, err)
		}
	}
}
