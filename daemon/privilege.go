package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"slices"
	"strconv"
	"syscall"

	"github.com/multigres/proxy/daemon/config"
)

// identity is the account a root-started daemon switches to.
type identity struct {
	uid, gid int // -1 = leave as is
	groups   []int
	user     string
	group    string
}

// lookupIdentity resolves cfg.User and cfg.Group. With only a user, the
// group is the user's primary group; the supplementary groups are the
// user's, as initgroups(3) would set them, so that group-readable key files
// stay readable.
func lookupIdentity(userName, groupName string) (identity, error) {
	id := identity{uid: -1, gid: -1, user: userName, group: groupName}
	if userName != "" {
		u, err := lookupUser(userName)
		if err != nil {
			return id, err
		}
		id.uid, _ = strconv.Atoi(u.Uid)
		id.gid, _ = strconv.Atoi(u.Gid)
		if gids, err := u.GroupIds(); err == nil {
			for _, g := range gids {
				if n, err := strconv.Atoi(g); err == nil {
					id.groups = append(id.groups, n)
				}
			}
		}
	}
	if groupName != "" {
		g, err := lookupGroup(groupName)
		if err != nil {
			return id, err
		}
		id.gid, _ = strconv.Atoi(g.Gid)
	}
	if id.gid >= 0 && !slices.Contains(id.groups, id.gid) {
		id.groups = append([]int{id.gid}, id.groups...)
	}
	return id, nil
}

func lookupUser(name string) (*user.User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if _, numErr := strconv.Atoi(name); numErr == nil {
			if u, idErr := user.LookupId(name); idErr == nil {
				return u, nil
			}
		}
		return nil, fmt.Errorf("user = %s: %w", name, err)
	}
	return u, nil
}

func lookupGroup(name string) (*user.Group, error) {
	g, err := user.LookupGroup(name)
	if err != nil {
		if _, numErr := strconv.Atoi(name); numErr == nil {
			if g, idErr := user.LookupGroupId(name); idErr == nil {
				return g, nil
			}
		}
		return nil, fmt.Errorf("group = %s: %w", name, err)
	}
	return g, nil
}

// dropPrivileges switches a process started as root to cfg.User and
// cfg.Group, after the sockets are bound and the keys read, and refuses to
// go on as root unless allow_root is set. A process not started as root (for
// example under systemd with User=) is left as it is. The Unix sockets this
// process created are given to the new owner first, so that
// unix_socket_mode's owner and group bits mean the service account.
//
// Go applies setgroups, setgid and setuid to every thread of the process
// (since Go 1.16), so no thread keeps root.
func dropPrivileges(cfg *config.Config, sockets []string, log *slog.Logger) error {
	if os.Geteuid() != 0 {
		return nil
	}
	if cfg.User != "" || cfg.Group != "" {
		id, err := lookupIdentity(cfg.User, cfg.Group)
		if err != nil {
			return fmt.Errorf("dropping privileges: %w", err)
		}
		if err := switchTo(id, sockets); err != nil {
			return fmt.Errorf("dropping privileges to user %q group %q: %w", cfg.User, cfg.Group, err)
		}
		log.Info("dropped root privileges", "user", cfg.User, "uid", os.Getuid(), "group", cfg.Group, "gid", os.Getgid())
	}
	if os.Geteuid() == 0 && !cfg.AllowRoot {
		return errors.New("refusing to serve as root: set user (and group) to an unprivileged account, " +
			"or allow_root = on")
	}
	return nil
}

func switchTo(id identity, sockets []string) error {
	for _, path := range sockets {
		if err := os.Lchown(path, id.uid, id.gid); err != nil {
			return fmt.Errorf("handing the unix socket to the service account: %w", err)
		}
	}
	if id.gid >= 0 {
		if err := syscall.Setgroups(id.groups); err != nil {
			return fmt.Errorf("setgroups: %w", err)
		}
		if err := syscall.Setgid(id.gid); err != nil {
			return fmt.Errorf("setgid %d: %w", id.gid, err)
		}
	}
	if id.uid >= 0 {
		if err := syscall.Setuid(id.uid); err != nil {
			return fmt.Errorf("setuid %d: %w", id.uid, err)
		}
	}
	// Check the result rather than trust it: a root that can come back is
	// no drop at all.
	if id.uid > 0 {
		if os.Getuid() != id.uid || os.Geteuid() != id.uid {
			return fmt.Errorf("still uid %d/%d after setuid %d", os.Getuid(), os.Geteuid(), id.uid)
		}
		if err := syscall.Setuid(0); err == nil {
			return errors.New("could regain root after setuid")
		}
	}
	if id.gid >= 0 && (os.Getgid() != id.gid || os.Getegid() != id.gid) {
		return fmt.Errorf("still gid %d/%d after setgid %d", os.Getgid(), os.Getegid(), id.gid)
	}
	return nil
}
