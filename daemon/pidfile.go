package daemon

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// writePIDFile writes the process id to path. It does not follow a symlink
// at path: the file is usually written as root, possibly in a directory
// others can write to.
func writePIDFile(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("pid_file: %w", err)
	}
	if _, err := f.WriteString(strconv.Itoa(os.Getpid()) + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("pid_file: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pid_file: writing %s: %w", path, err)
	}
	return nil
}

// removePIDFile removes path if it still holds this process's id, so that
// a newer instance's file is left alone.
func removePIDFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("pid_file: %w", err)
	}
	if string(bytes.TrimSpace(data)) != strconv.Itoa(os.Getpid()) {
		return nil
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("pid_file: %w", err)
	}
	return nil
}
