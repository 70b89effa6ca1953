package dbsetup

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// Options describe the roles and context variables Setup installs and Audit checks.
type Options struct {
	// ServerUser is the login role the proxy uses for tenant traffic: LOGIN
	// NOINHERIT, owns nothing, member of every tenant role.
	ServerUser string
	// ServerPassword is set (as a SCRAM verifier) when non-empty and different
	// from the stored one; "" keeps an existing password.
	ServerPassword string
	// AuthUser is the login role the proxy uses only to look up verifiers
	// and the seal key.
	AuthUser     string
	AuthPassword string
	// TenantRoles are the roles clients name in their user name
	// (app_user.acme); created NOLOGIN NOINHERIT when missing.
	TenantRoles []string
	// ContextVariables are the GUCs the proxy sets per session, in the order
	// the seal lists them; the first is the default for multigres_protect.
	ContextVariables []string
	// Harden applies (Setup) or checks (Audit) the privilege hardening that
	// stops tenant sessions from running SQL the statement guard cannot see.
	Harden bool
	// Seal picks the seal carrier Setup installs: SealAuto (""), the C
	// extension when the server has it available, else the SQL objects;
	// SealExtension requires the extension; SealSQL installs the SQL
	// accessor and drops the extension if it was installed.
	Seal string
}

// Seal carriers (Options.Seal).
const (
	SealAuto      = ""
	SealExtension = "extension"
	SealSQL       = "sql"
)

// maxNameLen is PostgreSQL's NAMEDATALEN-1: longer names would be truncated
// silently, so two configured names could collapse into one.
const maxNameLen = 63

// contextVarRE accepts custom GUC names (prefix.name), the only kind a
// non-superuser session can SET without a server extension.
var contextVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)+$`)

func (o Options) validate() error {
	var errs []error
	checkRole := func(what, name string) {
		switch {
		case name == "":
			errs = append(errs, fmt.Errorf("%s is empty", what))
		case len(name) > maxNameLen:
			errs = append(errs, fmt.Errorf("%s %q is longer than %d bytes", what, name, maxNameLen))
		case strings.HasPrefix(name, "pg_"):
			errs = append(errs, fmt.Errorf("%s %q: names starting with pg_ are reserved", what, name))
		case strings.ContainsFunc(name, unicode.IsControl):
			errs = append(errs, fmt.Errorf("%s %q contains a control character", what, name))
		}
	}
	checkRole("server user", o.ServerUser)
	checkRole("auth user", o.AuthUser)
	if o.ServerUser != "" && o.ServerUser == o.AuthUser {
		errs = append(errs, fmt.Errorf("server user and auth user must differ (both %q)", o.ServerUser))
	}
	if len(o.TenantRoles) == 0 {
		errs = append(errs, errors.New("no tenant roles given"))
	}
	for i, r := range o.TenantRoles {
		checkRole("tenant role", r)
		if strings.Contains(r, ".") {
			// Clients connect as <role>.<values>; a dot in the role would be ambiguous.
			errs = append(errs, fmt.Errorf("tenant role %q contains '.', the user name separator", r))
		}
		if r == o.ServerUser || r == o.AuthUser {
			errs = append(errs, fmt.Errorf("tenant role %q is also the server or auth user", r))
		}
		if slices.Contains(o.TenantRoles[:i], r) {
			errs = append(errs, fmt.Errorf("tenant role %q listed twice", r))
		}
	}
	if len(o.ContextVariables) == 0 {
		errs = append(errs, errors.New("no context variables given"))
	}
	for i, v := range o.ContextVariables {
		switch {
		case len(v) > maxNameLen:
			errs = append(errs, fmt.Errorf("context variable %q is longer than %d bytes", v, maxNameLen))
		case !contextVarRE.MatchString(v):
			errs = append(errs, fmt.Errorf("context variable %q is not a custom setting name like app.current_tenant_id", v))
		case strings.HasPrefix(strings.ToLower(v), "multigres."):
			errs = append(errs, fmt.Errorf("context variable %q: the multigres. prefix is reserved for the seal", v))
		case slices.ContainsFunc(o.ContextVariables[:i], func(w string) bool { return strings.EqualFold(v, w) }):
			// Setting names are case-insensitive, so these would be one variable.
			errs = append(errs, fmt.Errorf("context variable %q listed twice", v))
		}
	}
	switch o.Seal {
	case SealAuto, SealExtension, SealSQL:
	default:
		errs = append(errs, fmt.Errorf("seal carrier %q: want %q, %q or empty (automatic)", o.Seal, SealExtension, SealSQL))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dbsetup: invalid options: %w", err)
	}
	return nil
}
