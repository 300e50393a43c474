package telemetry

import (
	"sync"
	"sync/atomic"
)

// SeriesCache keeps the metric series (a prometheus Counter, Observer, …)
// of each label set seen, made once by Make, so that looking one up again
// is a map read without locks (a copy-on-write map) instead of hashing the
// labels into the vector on every request. The label sets must be bounded
// (route patterns, MethodLabel, status classes, fixed results): every key
// seen stays in the map.
type SeriesCache[K comparable, V any] struct {
	// Make returns the series of a label set seen for the first time.
	Make func(K) V
	mu   sync.Mutex // serializes additions
	m    atomic.Pointer[map[K]V]
}

// Get returns k's series, making it on first sight.
func (c *SeriesCache[K, V]) Get(k K) V {
	if m := c.m.Load(); m != nil {
		if v, ok := (*m)[k]; ok {
			return v
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	next := map[K]V{}
	if old != nil {
		if v, ok := (*old)[k]; ok {
			return v
		}
		for k, v := range *old {
			next[k] = v
		}
	}
	v := c.Make(k)
	next[k] = v
	c.m.Store(&next)
	return v
}
