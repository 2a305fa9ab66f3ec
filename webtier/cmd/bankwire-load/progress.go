package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// progress shows a run as it goes: a bar on a terminal, a plain line every
// few seconds otherwise (logs, CI).
type progress interface {
	update(l live)
	done()
	abort() // the run failed before its end
}

type barProgress struct {
	p     *mpb.Progress
	bar   *mpb.Bar
	total time.Duration
	mu    sync.Mutex
	last  live
}

func (bp *barProgress) latest() live {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	return bp.last
}

func newBarProgress(w io.Writer, total time.Duration) *barProgress {
	bp := &barProgress{total: total}
	bp.p = mpb.New(mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithRefreshRate(250*time.Millisecond))
	bp.bar = bp.p.New(int64(total/time.Second), mpb.BarStyle(),
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
			return fmt.Sprintf("%s/%s", bp.latest().elapsed.Truncate(time.Second), total)
		}, decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
			l := bp.latest()
			return fmt.Sprintf("%6.1f/s  errors %d  p50 %s  p99 %s", l.rate, l.errors,
				l.p50.Round(100*time.Microsecond), l.p99.Round(100*time.Microsecond))
		})),
	)
	return bp
}

func (bp *barProgress) update(l live) {
	bp.mu.Lock()
	bp.last = l
	bp.mu.Unlock()
	bp.bar.SetCurrent(min(int64(l.elapsed/time.Second), int64(bp.total/time.Second)))
}

func (bp *barProgress) done() {
	bp.bar.SetCurrent(int64(bp.total / time.Second))
	bp.p.Wait()
}

func (bp *barProgress) abort() {
	bp.bar.Abort(false)
	bp.p.Wait()
}

type lineProgress struct {
	w     io.Writer
	total time.Duration
	every int
	n     int
}

func (lp *lineProgress) update(l live) {
	lp.n++
	if lp.n%lp.every == 0 {
		fmt.Fprintln(lp.w, l.String(lp.total))
	}
}

func (lp *lineProgress) done()  {}
func (lp *lineProgress) abort() {}
