package e2e

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// Waiters that arrive together are served highest weight first, never
// more at once than there are slots.
func TestSlotQueueLongestFirst(t *testing.T) {
	q := newSlotQueue(2, 100*time.Millisecond)
	weights := []float64{1, 9, 3, 0, 7, 5}
	var (
		mu           sync.Mutex
		order        []float64
		running, max int
		wg           sync.WaitGroup
	)
	for _, w := range weights {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release := q.acquire(w)
			mu.Lock()
			order = append(order, w)
			running++
			max = maxInt(max, running)
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			running--
			mu.Unlock()
			release()
			release() // a second call is a no-op
		}()
	}
	wg.Wait()
	// Two at a time: 9 and 7 first; the two slots they free go to 5 and
	// 3, then to 1 and 0. The grants of a pair come within microseconds of
	// each other, so the order their goroutines record them in is a race.
	if len(order) != len(weights) || !slices.Equal(sortedDesc(order[:2]), []float64{9, 7}) ||
		!slices.Equal(sortedDesc(order[2:4]), []float64{5, 3}) || !slices.Equal(sortedDesc(order[4:]), []float64{1, 0}) {
		t.Errorf("grant order %v, want 9 and 7, then 5 and 3, then 1 and 0 (each pair in either order)", order)
	}
	if max != 2 {
		t.Errorf("%d ran at once, want 2", max)
	}
	if q.free != 2 {
		t.Errorf("%d slots free at the end, want 2", q.free)
	}
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

func sortedDesc(s []float64) []float64 {
	c := slices.Clone(s)
	slices.Sort(c)
	slices.Reverse(c)
	return c
}
