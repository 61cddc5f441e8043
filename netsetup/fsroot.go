package netsetup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// FS resolves absolute host paths under Root so that tests (and image
// builders) can run the whole file layer against a temp directory.
type FS struct{ Root string }

// P maps an absolute host path into the root.
func (f FS) P(path string) string {
	if f.Root == "" || f.Root == "/" {
		return path
	}
	return filepath.Join(f.Root, path)
}

// FileState is what the plan needs to know about one managed path.
type FileState struct {
	Exists  bool   `json:"exists"`
	Symlink string `json:"symlink,omitempty"` // link target when the path is a symlink
	Content string `json:"content,omitempty"` // content (of the target, for symlinks)
	Mode    uint32 `json:"mode,omitempty"`
}

// Stat reads path (following a symlink for the content, keeping its target).
func (f FS) Stat(path string) (FileState, error) {
	p := f.P(path)
	var st FileState
	if t, err := os.Readlink(p); err == nil {
		st.Exists, st.Symlink = true, t
	}
	data, err := os.ReadFile(p)
	switch {
	case err == nil:
		st.Exists, st.Content = true, string(data)
		if fi, err := os.Stat(p); err == nil {
			st.Mode = uint32(fi.Mode().Perm())
		}
	case errors.Is(err, fs.ErrNotExist):
		// dangling symlink still counts as existing (Symlink set)
	default:
		return st, fmt.Errorf("read %s: %w", p, err)
	}
	return st, nil
}

// WriteAtomic writes data to a temp file in the same directory and renames it
// over path, so readers (networkd, resolver, systemd) never see a half file.
// A symlink at path is replaced by the regular file, not followed.
func (f FS) WriteAtomic(path string, data []byte, mode os.FileMode) error {
	p := f.P(path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("create directory for %s: %w", p, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".pam-vrf-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(name)
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("chmod %s: %w", name, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	if err := os.Rename(name, p); err != nil {
		return fmt.Errorf("rename %s -> %s: %w", name, p, err)
	}
	ok = true
	return nil
}

// SymlinkAtomic makes path a symlink to target (temp link + rename).
func (f FS) SymlinkAtomic(path, target string) error {
	p := f.P(path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("create directory for %s: %w", p, err)
	}
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".pam-vrf-link")
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("symlink %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename %s -> %s: %w", tmp, p, err)
	}
	return nil
}

// Remove deletes path; a missing file is fine.
func (f FS) Remove(path string) error {
	if err := os.Remove(f.P(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", f.P(path), err)
	}
	return nil
}

// Restore puts a FileState captured earlier back (used by Undo and revert).
func (f FS) Restore(path string, st FileState) error {
	switch {
	case !st.Exists:
		if err := f.Remove(path); err != nil {
			return err
		}
		f.pruneDropInDir(filepath.Dir(path))
		return nil
	case st.Symlink != "":
		return f.SymlinkAtomic(path, st.Symlink)
	default:
		mode := os.FileMode(st.Mode)
		if mode == 0 {
			mode = 0o644
		}
		return f.WriteAtomic(path, []byte(st.Content), mode)
	}
}

// Glob lists host paths (not root-prefixed) matching pattern under the root.
func (f FS) Glob(pattern string) []string {
	m, _ := filepath.Glob(f.P(pattern))
	if f.Root == "" || f.Root == "/" {
		return m
	}
	out := make([]string, 0, len(m))
	for _, p := range m {
		rel, err := filepath.Rel(f.Root, p)
		if err == nil {
			out = append(out, "/"+rel)
		}
	}
	return out
}

// pruneDropInDir removes a systemd drop-in directory (*.network.d,
// *.service.d under /etc/systemd) left empty once our drop-in is gone:
// apply created it, and revert restores the tree as it was.
func (f FS) pruneDropInDir(dir string) {
	if !strings.HasPrefix(dir, "/etc/systemd/") || !(strings.HasSuffix(dir, ".network.d") || strings.HasSuffix(dir, ".service.d")) {
		return
	}
	_ = os.Remove(f.P(dir)) // fails (and keeps it) unless empty
}
