// Package nodetest runs the Node.js example client (examples/node) against
// a scripted hiveq.v1.QueryService on loopback TCP. It has no code of its
// own; the tests need node and npm (they skip without them).
package nodetest
