package oauth

import (
	"sync"
	"time"
)

// pageLogEvery is how often, at most, the authorization endpoint's error
// page is logged after the first (errorPage).
const pageLogEvery = time.Minute

// boundedLog lets a kind of line be written at most once per every: the
// first at once, then one per every at most, each counting the events
// since the line before it (the refusal log of the fetch bound,
// clients.refusalLog, follows the same rule). Anyone can send a browser
// to the authorization endpoint's error page: a line per page let an
// anonymous caller fill the log at the rate limits' pace.
type boundedLog struct {
	every time.Duration
	now   func() time.Time

	mu    sync.Mutex
	last  time.Time // when the last line was written (zero: none yet)
	count int64     // events since then, not yet in a line
}

// event counts an event and reports whether a line is to be written now,
// with the number of events it stands for (this one included). A nil
// boundedLog bounds nothing.
func (l *boundedLog) event() (n int64, write bool) {
	if l == nil {
		return 1, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.count++
	now := l.now()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		return 0, false
	}
	n = l.count
	l.last, l.count = now, 0
	return n, true
}
