package main

// -rejoin: what the viewer page does when its room's LiveKit node dies (issue 14;
// broadcaster/web/static/js/viewer.js and stage_status.js). The page notices LiveKit
// dropping it, or the live avatar's picture frozen for 2.5 s (a dead node's events stop
// too, so LiveKit's own signalling notices ~12 s late); it leaves, asks the join API
// again with its claim, naming the room it lost ("lost"), gives each LiveKit connect
// 4 s, and asks again 1 s after a failure. Each rejoin is printed (type "rejoin") once
// the viewer is watching again (5 complete frames), with its timeline.
//
// One difference from the page: a fresh session that gets no frame within -frozen of its
// connect also counts as frozen here (the page only rejoins a stage it saw live); such a
// case shows as joins > 1 in the event.

import (
	"context"
	"net/http"
	"sync"
	"time"
)

const (
	checkEvery     = 250 * time.Millisecond // stage_status.js CHECK_MS
	rejoinConnect  = 4 * time.Second        // stage.js CONNECT_TIMEOUT_MS
	rejoinRetry    = time.Second            // viewer.js: rejoinSoon('disconnected', 1000)
	framesWatching = 5                      // "watching again": 5 complete frames, as the tests count
)

// rejoinEvent: one rejoin, from noticing the loss to watching again. Times are unix seconds.
type rejoinEvent struct {
	Type       string   `json:"type"` // "rejoin"
	ID         int      `json:"id"`
	Identity   string   `json:"identity"`
	Reason     string   `json:"reason"` // frozen | disconnected
	Lost       string   `json:"lost"`   // the LiveKit room it lost
	LastFrame  float64  `json:"last_frame,omitempty"`
	Noticed    float64  `json:"noticed"`
	Joins      int      `json:"joins"` // join API + connect attempts
	Errors     []string `json:"errors,omitempty"`
	Connected  float64  `json:"connected,omitempty"`
	FirstFrame float64  `json:"first_frame,omitempty"`
	Watching   float64  `json:"watching,omitempty"` // the 5th complete frame
	Room       string   `json:"room,omitempty"`     // where it watches again
	Done       bool     `json:"done"`
}

// watch runs beside one viewer for the whole run when -rejoin is on.
func (v *viewer) watch(ctx context.Context, cfg *config, client *http.Client, runStart time.Time) {
	t := time.NewTicker(checkEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		v.mu.Lock()
		video, dropped, since, pend := v.video, v.dropped, v.connected, v.pending
		v.mu.Unlock()
		var last, first, fifth time.Time
		var frames uint64
		if video != nil {
			last, frames, first, fifth = video.progress()
		}
		if pend != nil && frames >= framesWatching {
			v.mu.Lock()
			pend.FirstFrame, pend.Watching, pend.Done = unix(first), unix(fifth), true
			v.pending = nil
			v.mu.Unlock()
			emit(pend)
			continue
		}
		ref := last
		if pend != nil && ref.Before(since) { // a fresh session that never got a frame
			ref = since
		}
		reason := ""
		switch {
		case dropped:
			reason = "disconnected"
		case !ref.IsZero() && now.Sub(ref) >= cfg.frozen:
			reason = "frozen"
		}
		if reason != "" {
			v.rejoin(ctx, cfg, client, runStart, reason, last)
		}
	}
}

// rejoin leaves the current session and joins again until a connect succeeds.
func (v *viewer) rejoin(ctx context.Context, cfg *config, client *http.Client, runStart time.Time,
	reason string, last time.Time) {
	now := time.Now()
	v.mu.Lock()
	old, lost := v.room, v.lkRoom
	v.room = nil
	v.gen++ // the old session's late events are not this viewer's any more
	if v.video != nil {
		v.prevFrames += v.video.frameCount()
	}
	v.video, v.audio, v.dropped = nil, nil, false
	v.baseline = map[*trackStats]sample{}
	ev := v.pending
	if ev == nil {
		ev = &rejoinEvent{Type: "rejoin", ID: v.id, Identity: v.identity, Reason: reason,
			Lost: lost, Noticed: unix(now)}
		if !last.IsZero() {
			ev.LastFrame = unix(last)
		}
		v.pending = ev
	}
	v.mu.Unlock()
	if old != nil {
		go old.Disconnect() // its node may be dead: never wait for it
	}
	for ctx.Err() == nil {
		v.mu.Lock()
		ev.Joins++
		v.mu.Unlock()
		err := v.connect(ctx, cfg, client, runStart, lost, rejoinConnect)
		v.mu.Lock()
		if err == nil {
			ev.Connected, ev.Room = unix(v.connected), v.lkRoom
			v.mu.Unlock()
			return
		}
		if len(ev.Errors) < 5 {
			msg := err.Error()
			if len(msg) > 160 {
				msg = msg[:160]
			}
			ev.Errors = append(ev.Errors, msg)
		}
		v.mu.Unlock()
		if sleepCtx(ctx, rejoinRetry) != nil {
			return
		}
	}
}

// unfinished: the rejoin in progress, if any (a viewer that never watched again).
func (v *viewer) unfinished() *rejoinEvent {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.pending == nil {
		return nil
	}
	ev := *v.pending
	return &ev
}

// tickLine: every viewer's complete frames so far (all sessions), the longest time
// without a new frame since the previous tick (a stall still going on included) and
// the LiveKit room it watches in.
type tickLine struct {
	Type   string    `json:"type"` // "tick"
	T      float64   `json:"t"`
	Frames []uint64  `json:"frames"`
	GapMS  []float64 `json:"gap_ms"`
	Rooms  []string  `json:"rooms"`
}

func tickLoop(ctx context.Context, every time.Duration, list func() []*viewer) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		vs := list()
		line := tickLine{Type: "tick", T: unix(now), Frames: make([]uint64, len(vs)),
			GapMS: make([]float64, len(vs)), Rooms: make([]string, len(vs))}
		for i, v := range vs {
			v.mu.Lock()
			video, prev := v.video, v.prevFrames
			line.Rooms[i] = v.lkRoom
			v.mu.Unlock()
			line.Frames[i] = prev
			if video != nil {
				n, gap := video.tick(now)
				line.Frames[i] += n
				line.GapMS[i] = ms(gap)
			}
		}
		emit(line)
	}
}

var emitMu sync.Mutex
