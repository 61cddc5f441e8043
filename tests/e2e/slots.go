package e2e

import (
	"os"
	"strconv"
	"sync"
	"time"
)

// guestSlots hands the guest slots (PAMVRF_GUESTS, 2 by default: what a
// 2-core machine holds under TCG) to waiting guest tests longest first.
// go test's own -parallel semaphore starts parallel tests in whatever
// order their goroutines run, and a long test started last leaves the
// other slot idle for most of its length: with 16 tests of 1 to 9 minutes
// that tail was several minutes of make test. make e2e passes a -parallel
// larger than the number of tests so that this queue alone decides.
var guestSlots = newSlotQueue(envInt("PAMVRF_GUESTS", 2), 2*time.Second)

// typicalMinutes is about how long each guest test takes in CI (two
// guests at once; this stop's runs): only the order matters, so it needs
// no update unless a test's length changes a lot. A test not listed goes
// last.
var typicalMinutes = map[string]float64{
	"TestE2ETrixieNetplan":  7,
	"TestE2EFleet":          7,
	"TestE2ENetworkManager": 6.5,
	"TestE2E":               6.5,
	"TestE2ESSHDVRFOnly":    6.5,
	"TestE2EDhcpcd":         6,
	"TestE2ENetsetup":       9, // its networkd settles vary most: first
	"TestE2EFleetTry":       5.5,
	"TestE2EIfupdown":       5,
	"TestE2EOtherVRF":       4.5,
	"TestE2EIPv6Only":       4.5,
	"TestE2EServices":       3.5,
	"TestE2EIfupdownStatic": 3.5,
	"TestE2EPackage":        3.5,
	"TestE2EFailureRule":    3,
	"TestE2ECloudInit":      1,
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

type slotWaiter struct {
	weight float64
	ready  chan struct{}
}

type slotQueue struct {
	mu      sync.Mutex
	free    int
	settle  time.Duration // how long after the first waiter the first grant waits
	first   time.Time     // when the first waiter came
	waiting []*slotWaiter
}

func newSlotQueue(slots int, settle time.Duration) *slotQueue {
	return &slotQueue{free: slots, settle: settle}
}

// acquire blocks until a slot is the caller's; weight orders the waiters
// (highest first). The first grant waits for settle after the first
// waiter came, so that every test released by go test at once is queued
// before the queue chooses.
func (q *slotQueue) acquire(weight float64) (release func()) {
	w := &slotWaiter{weight: weight, ready: make(chan struct{})}
	q.mu.Lock()
	if q.first.IsZero() {
		q.first = time.Now()
		time.AfterFunc(q.settle, q.dispatch)
	}
	q.waiting = append(q.waiting, w)
	q.mu.Unlock()
	q.dispatch()
	<-w.ready
	var once sync.Once
	return func() {
		once.Do(func() {
			q.mu.Lock()
			q.free++
			q.mu.Unlock()
			q.dispatch()
		})
	}
}

func (q *slotQueue) dispatch() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if time.Since(q.first) < q.settle {
		return
	}
	for q.free > 0 && len(q.waiting) > 0 {
		best := 0
		for i, w := range q.waiting {
			if w.weight > q.waiting[best].weight {
				best = i
			}
		}
		w := q.waiting[best]
		q.waiting = append(q.waiting[:best], q.waiting[best+1:]...)
		q.free--
		close(w.ready)
	}
}
