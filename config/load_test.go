package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const goodPolicy = "[user.alice]\nvrf = \"mgmt\"\n"

// safeDir returns a fresh root-owned 0755 directory. Tests run as root, in
// t.TempDir() under os.TempDir(); that is /tmp, root-owned and sticky, which
// Load must accept (see TestTmpIsStickyAndAccepted).
func safeDir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the checks are about root ownership")
	}
	d := t.TempDir()
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask
		t.Fatal(err)
	}
	return path
}

func mkdir(t *testing.T, path string, mode os.FileMode) string {
	t.Helper()
	if err := os.Mkdir(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestTmpIsStickyAndAccepted looks at the real temp dir rather than assume
// it: if it is the usual world-writable sticky /tmp, a policy below it must
// load (the sticky exception), which every other test here relies on.
func TestTmpIsStickyAndAccepted(t *testing.T) {
	d := safeDir(t)
	var st syscall.Stat_t
	must(t, syscall.Stat(os.TempDir(), &st))
	t.Logf("%s: mode %04o uid %d", os.TempDir(), st.Mode&0o7777, st.Uid)
	if st.Uid != 0 || st.Mode&0o002 == 0 || st.Mode&syscall.S_ISVTX == 0 {
		t.Skipf("%s is not a root-owned world-writable sticky dir", os.TempDir())
	}
	p, err := Load(writeFile(t, filepath.Join(d, "p.toml"), goodPolicy, 0o644))
	if err != nil || !p.Exists || p.Users["alice"].VRF != "mgmt" {
		t.Fatalf("Load under sticky %s = %+v, %v", os.TempDir(), p, err)
	}
}

func TestLoadMissing(t *testing.T) {
	d := safeDir(t)
	for _, path := range []string{filepath.Join(d, "none.toml"), filepath.Join(d, "nodir", "none.toml")} {
		p, err := Load(path)
		if err != nil || p == nil || p.Exists || p.Path != path {
			t.Errorf("Load(%s) = %+v, %v; want no policy", path, p, err)
		}
		if d, _ := p.Decide("root", "sshd", nil); d.Matched {
			t.Errorf("no policy matched: %+v", d)
		}
	}
}

func TestLoadOK(t *testing.T) {
	d := safeDir(t)
	sticky := mkdir(t, filepath.Join(d, "sticky"), 0o777|os.ModeSticky)
	real := writeFile(t, filepath.Join(d, "real.toml"), goodPolicy, 0o600)
	must(t, os.Symlink("real.toml", filepath.Join(d, "rel-link")))
	sub := mkdir(t, filepath.Join(d, "sub"), 0o755)
	must(t, os.Symlink("../real.toml", filepath.Join(sub, "dotdot-link")))
	must(t, os.Symlink(sub, filepath.Join(d, "dir-link")))
	for _, path := range []string{
		real,
		writeFile(t, filepath.Join(sticky, "p.toml"), goodPolicy, 0o644), // root-owned file in a sticky dir
		filepath.Join(d, "rel-link"),
		filepath.Join(sub, "dotdot-link"),
		filepath.Join(d, "dir-link", "dotdot-link"),
		filepath.Join(sub, "..", "real.toml"),
	} {
		p, err := Load(path)
		if err != nil || !p.Exists || p.Path != path || p.Users["alice"].VRF != "mgmt" {
			t.Errorf("Load(%s) = %+v, %v", path, p, err)
		}
	}
}

func TestLoadRefuses(t *testing.T) {
	d := safeDir(t)
	good := writeFile(t, filepath.Join(d, "good.toml"), goodPolicy, 0o644)

	nobody := writeFile(t, filepath.Join(d, "nobody.toml"), goodPolicy, 0o644)
	must(t, os.Chown(nobody, 65534, 65534))
	world := writeFile(t, filepath.Join(d, "world.toml"), goodPolicy, 0o666)
	group := writeFile(t, filepath.Join(d, "group.toml"), goodPolicy, 0o620)

	gdir := mkdir(t, filepath.Join(d, "gdir"), 0o775)
	inGdir := writeFile(t, filepath.Join(gdir, "p.toml"), goodPolicy, 0o644)
	udir := mkdir(t, filepath.Join(d, "udir"), 0o755)
	must(t, os.Chown(udir, 65534, 65534))
	inUdir := writeFile(t, filepath.Join(udir, "p.toml"), goodPolicy, 0o644)

	sticky := mkdir(t, filepath.Join(d, "sticky"), 0o777|os.ModeSticky)
	userInSticky := writeFile(t, filepath.Join(sticky, "p.toml"), goodPolicy, 0o644)
	must(t, os.Chown(userInSticky, 65534, 65534))
	userSticky := mkdir(t, filepath.Join(d, "usticky"), 0o777|os.ModeSticky)
	must(t, os.Chown(userSticky, 65534, 65534))
	inUserSticky := writeFile(t, filepath.Join(userSticky, "p.toml"), goodPolicy, 0o644)

	toWorld := filepath.Join(d, "to-world")
	must(t, os.Symlink(world, toWorld))
	toNobody := filepath.Join(d, "to-nobody")
	must(t, os.Symlink(nobody, toNobody))
	userLink := filepath.Join(d, "user-link") // a good target, but a user's symlink
	must(t, os.Symlink(good, userLink))
	must(t, os.Lchown(userLink, 65534, 65534))
	stickyUserLink := filepath.Join(sticky, "user-link")
	must(t, os.Symlink(good, stickyUserLink))
	must(t, os.Lchown(stickyUserLink, 65534, 65534))
	dangling := filepath.Join(d, "dangling")
	must(t, os.Symlink(filepath.Join(d, "nothing.toml"), dangling))
	loop := filepath.Join(d, "loop")
	must(t, os.Symlink("loop", loop))

	// A directory symlink kept in a group-writable directory: the final
	// path (EvalSymlinks) is all root's, but a group member could repoint
	// the link.
	safe := mkdir(t, filepath.Join(d, "safe"), 0o755)
	writeFile(t, filepath.Join(safe, "p.toml"), goodPolicy, 0o644)
	must(t, os.Symlink(safe, filepath.Join(gdir, "safe-link")))
	viaGdir := filepath.Join(gdir, "safe-link", "p.toml")

	fifo := filepath.Join(d, "fifo")
	must(t, syscall.Mkfifo(fifo, 0o644))
	big := writeFile(t, filepath.Join(d, "big.toml"), strings.Repeat("#\n", MaxFileSize/2+1), 0o644)
	notDir := filepath.Join(good, "x.toml")

	refusing := func(path string) string { return path + ": refusing policy: " }
	tests := []struct{ path, want string }{
		{nobody, refusing(nobody) + "owned by uid 65534, not root (fix: chown root " + nobody + ")"},
		{world, refusing(world) + "mode 0666 is group/world-writable (fix: chmod 0644 " + world + ")"},
		{group, refusing(group) + "mode 0620 is group/world-writable (fix: chmod 0600 " + group + ")"},
		{inGdir, refusing(inGdir) + "directory " + gdir + ": mode 0775 is group/world-writable (fix: chmod go-w " + gdir + ")"},
		{inUdir, refusing(inUdir) + "directory " + udir + " is owned by uid 65534, not root (fix: chown root " + udir + ")"},
		{userInSticky, refusing(userInSticky) + "owned by uid 65534, not root (fix: chown root " + userInSticky + ")"},
		{inUserSticky, refusing(inUserSticky) + "directory " + userSticky + " is owned by uid 65534, not root (fix: chown root " + userSticky + ")"},
		{toWorld, refusing(toWorld) + "symlink target " + world + ": mode 0666 is group/world-writable (fix: chmod 0644 " + world + ")"},
		{toNobody, refusing(toNobody) + "symlink target " + nobody + ": owned by uid 65534, not root (fix: chown root " + nobody + ")"},
		{userLink, refusing(userLink) + "symlink " + userLink + " is owned by uid 65534, not root (fix: chown -h root " + userLink + ")"},
		{stickyUserLink, refusing(stickyUserLink) + "symlink " + stickyUserLink + " is owned by uid 65534, not root (fix: chown -h root " + stickyUserLink + ")"},
		{dangling, refusing(dangling) + "lstat " + filepath.Join(d, "nothing.toml") + ": no such file or directory"},
		{loop, refusing(loop) + "more than 40 symlinks"},
		{viaGdir, refusing(viaGdir) + "directory " + gdir + ": mode 0775 is group/world-writable (fix: chmod go-w " + gdir + ")"},
		{fifo, refusing(fifo) + "not a regular file (a FIFO)"},
		{d, refusing(d) + "not a regular file (a directory)"},
		{big, refusing(big) + "1048578 bytes, more than the limit of 1048576"},
		{notDir, refusing(notDir) + good + " is not a directory"},
	}
	for _, tt := range tests {
		name, _ := filepath.Rel(d, tt.path)
		t.Run(name, func(t *testing.T) {
			p, err := Load(tt.path)
			if err == nil {
				t.Fatalf("Load(%s) = %+v, want refusal", tt.path, p)
			}
			if p != nil {
				t.Errorf("Load returned a policy with its error: %+v", p)
			}
			if err.Error() != tt.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tt.want)
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Path != tt.path {
				t.Errorf("error %#v is not a *Error naming the path", err)
			}
			var c Cache
			if p, err := c.Load(tt.path); err == nil || p != nil {
				t.Errorf("Cache.Load(%s) = %+v, %v; want the same refusal", tt.path, p, err)
			}
		})
	}
}

func TestLoadParseError(t *testing.T) {
	d := safeDir(t)
	path := writeFile(t, filepath.Join(d, "p.toml"), "[user.alice]\nvrf = \"a/b\"\n", 0o644)
	_, err := Load(path)
	want := path + `:2: user.alice.vrf: invalid VRF name "a/b": contains '/'`
	if err == nil || err.Error() != want {
		t.Errorf("Load = %v, want %s", err, want)
	}
}
