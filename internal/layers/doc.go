// Package layers holds a test that keeps package dependencies pointing down:
// cmd → daemon → wire, tls, dbsetup; nothing below imports what is above it.
package layers
