package dbsetup

import "strings"

// SQLAccessorAs returns the SQL accessor's CREATE statement under another
// name, so a cost test can compare it with the C one in the same session.
func SQLAccessorAs(o Options, serverVersion int, name string) string {
	return strings.Replace(templateValues(o, serverVersion).Replace(createContextSQL), "multigres.context(", name+"(", 1)
}
