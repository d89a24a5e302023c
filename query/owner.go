package query

// Caller is who asks to control a running query: the authenticated user
// (the same name Request.User carries when that user starts a query) and
// whether it is an admin.
type Caller struct {
	User  string
	Admin bool
}

// ReasonNotQueryOwner: the caller neither started the query nor is an admin.
const ReasonNotQueryOwner = "NOT_QUERY_OWNER"

// mayControl reports whether c may cancel a query that owner started.
func (c Caller) mayControl(owner string) bool { return c.Admin || c.User == owner }

// checkOwner refuses c unless it may control r.
func checkOwner(r *run, c Caller) *Error {
	if c.mayControl(r.user) {
		return nil
	}
	err := newError(PermissionDenied, ReasonNotQueryOwner, nil,
		"query %q was started by another user; only its owner or an admin may cancel it", r.id)
	err.Metadata[MetaQueryID] = r.id
	return err
}
