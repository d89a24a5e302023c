package hs2

// SelfSignedTLS is testTLS for the external integration tests.
var SelfSignedTLS = testTLS
