// Package seal computes the tamper-evident seal that proves to the database
// that a tenant context was set by the proxy and not by the session itself.
//
// The format is fixed by docs/design.md and checked in SQL by
// multigres.context(); both sides must change together.
package seal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// GUC is the custom setting that carries the seal.
const GUC = "multigres.seal"

// Context is what one server connection assignment carries.
type Context struct {
	Role      string   // the SET ROLE target
	Variables []string // context variable names, in configured order
	Values    []string // their values, same order
}

// Key returns a reusable comparison key: two assignments with the same Key need
// no new SET on the server connection apart from a fresh seal.
func (c Context) Key() string {
	var b strings.Builder
	b.WriteString(c.Role)
	for i, v := range c.Variables {
		b.WriteByte(0)
		b.WriteString(v)
		b.WriteByte(0)
		b.WriteString(c.Values[i])
	}
	return b.String()
}

// Compute returns the value to store in multigres.seal for ctx on the backend
// with the given pid, bound to nonce (which the proxy also stores with setval so
// that only this assignment verifies).
func Compute(key []byte, ctx Context, pid uint32, nonce int64) string {
	mac := hmac.New(sha256.New, key)
	var msg []byte
	msg = append(msg, "v1\n"...)
	msg = append(msg, ctx.Role...)
	msg = append(msg, '\n')
	msg = strconv.AppendUint(msg, uint64(pid), 10)
	msg = append(msg, '\n')
	msg = strconv.AppendInt(msg, nonce, 10)
	msg = append(msg, '\n')
	for i, name := range ctx.Variables {
		msg = append(msg, name...)
		msg = append(msg, '=')
		msg = append(msg, ctx.Values[i]...)
		msg = append(msg, '\n')
	}
	mac.Write(msg)
	return strconv.FormatInt(nonce, 10) + ":" + strings.Join(ctx.Variables, ",") + ":" + hex.EncodeToString(mac.Sum(nil))
}
