package config

import (
	"strconv"
	"strings"
)

// Error is every error Load and Parse return. Error() is one line, fit for
// syslog: "path:line: key: msg"; Line 0 and Key "" are left out.
type Error struct {
	Path  string
	Line  int    // 1-based; 0 = about the whole file
	Key   string // dotted TOML key, e.g. `group.netops.vrf`; "" if none
	Msg   string
	Usage string // optional multi-line hint on how to fix it; not in Error()
	Err   error  // underlying cause, if any (for errors.Is / errors.As)
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Path)
	if e.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }
