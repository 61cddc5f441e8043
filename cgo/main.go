// The runtime lives inside sshd's monitor; it must not re-read the CPU quota
// in the background once a second (Go >= 1.25) for a few milliseconds of work.
//go:debug updatemaxprocs=0

// Command pam_vrf/core.so (built with -buildmode=c-shared) is the Go part
// of the PAM module: cgo/module/pam_vrf.c (the module libpam loads) loads it
// only inside open_session and calls pamvrf_core_open2; the session logic is
// in package pam. Processes that load the PAM stack without opening a
// session with us never start a Go runtime.
//
// Why the PAM calls are hand-written instead of github.com/msteinert/pam/v2:
// its released v2.1.0 is application-side only; the module side
// (ModuleTransaction, pam-moduler) is an unmerged fork pinned to a 2024
// pseudo-version, whose generator exports every pam_sm_* function from Go,
// whose SetData cleanup runs Go inside pam_end (which login and su call in a
// forked child), and which replaces our errors with PAM_SYSTEM_ERR. We need
// pam_syslog and pam_error: shim.c does them in a few lines of C, and only
// open_session ever enters Go.
package main

/*
#cgo LDFLAGS: -lpam
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"runtime/debug"
	"sync"
	"unsafe"

	"github.com/pam-vrf/pam-vrf/pam"
	"github.com/pam-vrf/pam-vrf/placement"
)

// env is built on first use.
var (
	env     *pam.Env
	envOnce sync.Once
)

// allowNonVRF is set only by the pamvrf_anydevice build tag, for host tests
// where a veth device stands in for the VRF (no VRF driver on the CI kernel).
var allowNonVRF = false

type syslog struct{ h *C.pam_handle_t }

func (s syslog) Log(p pam.Priority, msg string) {
	cs := C.CString(msg)
	defer C.free(unsafe.Pointer(cs))
	C.pamvrf_log(s.h, C.int(p), cs)
}

//export pamvrf_core_open2
func pamvrf_core_open2(h *C.pam_handle_t, user, service *C.char, pid C.int, silent C.int, groupsTimedOut C.int, argc C.int, argv **C.char) (rc C.int) {
	log := syslog{h}
	args := make([]string, 0, int(argc))
	for _, a := range unsafe.Slice(argv, int(argc)) {
		args = append(args, C.GoString(a))
	}
	req := pam.Request{
		User:    C.GoString(user),
		Service: C.GoString(service),
		PID:     int(pid),
		Args:    args,
		Silent:  silent != 0,
		// The C part's group lookup ran out of time: the Go part
		// reports it without waiting a second time.
		GroupsTimedOut: groupsTimedOut != 0,
	}
	defer func() {
		// Never unwind into libpam: a panic here would kill sshd's monitor.
		if r := recover(); r != nil {
			rc = reply(h, pam.Recovered(req, r, debug.Stack(), log))
		}
	}()
	envOnce.Do(func() { env = pam.SystemEnv(placement.Options{AllowNonVRF: allowNonVRF}) })
	return reply(h, pam.Open(req, log, env))
}

// reply shows the user message, if any, and maps the outcome to a PAM code.
func reply(h *C.pam_handle_t, out pam.Outcome) C.int {
	if out.UserMessage != "" {
		cs := C.CString(out.UserMessage)
		C.pamvrf_error(h, cs)
		C.free(unsafe.Pointer(cs))
	}
	switch out.Code {
	case pam.Success:
		return C.PAM_SUCCESS
	case pam.Ignore:
		return C.PAM_IGNORE
	default:
		return C.PAM_SESSION_ERR
	}
}

func main() {}
