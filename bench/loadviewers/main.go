// loadviewers: receive-only LiveKit viewers for load tests, on server-sdk-go.
//
// Each viewer joins through the web app's join API (POST /api/webinars/{room}/join,
// as a viewer page does), connects with the token it got, subscribes to everything and
// reads RTP without decoding. Per viewer it reports fps (distinct RTP timestamps, i.e.
// frames, not packets), loss (sequence gaps), bitrate, the picture size from keyframe
// headers (-> simulcast layer) and the join -> first frame time.
//
// Viewers are added at -ramp per second up to each of -steps; at each step the tool
// waits -settle, measures for -hold and prints one JSON line (type "step"); with
// -stop-fps/-stop-loss it stops after the first step where a viewer falls below them.
// The last line (type "final") carries the whole run; -out writes it to a file too.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
)

type stats struct {
	N      int     `json:"n"`
	Min    float64 `json:"min"`
	P5     float64 `json:"p5"`
	P50    float64 `json:"p50"`
	P95    float64 `json:"p95"`
	Max    float64 `json:"max"`
	Mean   float64 `json:"mean"`
	Median float64 `json:"-"`
}

func summarize(v []float64) stats {
	if len(v) == 0 {
		return stats{}
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	q := func(p float64) float64 { return s[int(math.Round(p*float64(len(s)-1)))] }
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	return stats{N: len(s), Min: s[0], P5: q(0.05), P50: q(0.5), P95: q(0.95), Max: s[len(s)-1],
		Mean: sum / float64(len(s))}
}

type stepReport struct {
	Type         string         `json:"type"`
	Viewers      int            `json:"viewers"`
	Receiving    int            `json:"receiving"` // viewers with video in the window
	Failed       int            `json:"failed"`
	Start        float64        `json:"window_start"` // unix seconds
	End          float64        `json:"window_end"`
	FPS          stats          `json:"fps"`
	Loss         stats          `json:"loss"`
	AudioLoss    stats          `json:"audio_loss"`
	Kbps         stats          `json:"kbps"`
	PPS          stats          `json:"pps"` // video packets per second
	AudioKbps    stats          `json:"audio_kbps"`
	MaxGapMS     stats          `json:"max_gap_ms"`
	FirstFrameMS stats          `json:"first_frame_ms"`
	JoinAPIMS    stats          `json:"join_api_ms"`
	Layers       map[string]int `json:"layers"`
	FPSQ         float64        `json:"fps_at_quantile"`  // fps that all but -stop-quantile reach
	LossQ        float64        `json:"loss_at_quantile"` // loss that all but -stop-quantile stay under
	Saturated    bool           `json:"saturated"`
	Reason       string         `json:"reason,omitempty"`
	PerViewer    []viewerReport `json:"per_viewer"`
}

// judge marks a step saturated when more than -stop-quantile of the viewers get less
// than -stop-fps or lose more than -stop-loss of their video packets.
func (c *config) judge(r *stepReport, fps, loss []float64) {
	r.FPSQ, r.LossQ = quantile(fps, c.stopQ), quantile(loss, 1-c.stopQ)
	if c.stopFPS > 0 && r.FPSQ < c.stopFPS {
		r.Saturated = true
		r.Reason = fmt.Sprintf("fps q%g %.2f < %g", c.stopQ, r.FPSQ, c.stopFPS)
	}
	if c.stopLoss > 0 && r.LossQ > c.stopLoss {
		r.Saturated = true
		r.Reason = strings.TrimPrefix(r.Reason+"; ", "; ") +
			fmt.Sprintf("loss q%g %.2f %% > %g %%", 1-c.stopQ, 100*r.LossQ, 100*c.stopLoss)
	}
}

// quantile: the value below which a share q of the values lie (lower nearest rank).
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	i := int(math.Floor(q * float64(len(s))))
	if q >= 1 || i >= len(s) {
		i = len(s) - 1
	}
	if q > 0.5 { // upper quantile: the share above it is at most 1-q
		i = int(math.Ceil(q*float64(len(s)))) - 1
		if i < 0 {
			i = 0
		}
	}
	return s[i]
}

func buildStep(viewers []*viewer, start, end time.Time, c *config, final bool) (stepReport, []float64, []float64) {
	r := stepReport{Type: "step", Viewers: len(viewers), Start: unix(start), End: unix(end),
		Layers: map[string]int{}}
	var fps, loss, aloss, kbps, pps, akbps, gap, first, api []float64
	for _, v := range viewers {
		vr := v.report(end, c.fullHeight, final)
		r.PerViewer = append(r.PerViewer, vr)
		if vr.Error != "" {
			r.Failed++
		}
		if vr.JoinAPIMS > 0 {
			api = append(api, vr.JoinAPIMS)
		}
		if vr.FirstFrameMS > 0 {
			first = append(first, vr.FirstFrameMS)
		}
		if vr.Audio != nil {
			aloss = append(aloss, vr.Audio.Loss)
			akbps = append(akbps, vr.Audio.Kbps)
		}
		if vr.Video == nil { // no video at all: counts as 0 fps, all lost
			fps = append(fps, 0)
			loss = append(loss, 1)
			continue
		}
		if vr.Video.Packets > 0 {
			r.Receiving++
		}
		fps = append(fps, vr.Video.FPS)
		loss = append(loss, vr.Video.Loss)
		kbps = append(kbps, vr.Video.Kbps)
		pps = append(pps, float64(vr.Video.Packets)/vr.Video.Seconds)
		gap = append(gap, vr.Video.MaxGapMS)
		if vr.Video.Layer != "" {
			r.Layers[vr.Video.Layer]++
		}
	}
	r.FPS, r.Loss, r.AudioLoss, r.Kbps = summarize(fps), summarize(loss), summarize(aloss), summarize(kbps)
	r.MaxGapMS, r.FirstFrameMS, r.JoinAPIMS = summarize(gap), summarize(first), summarize(api)
	r.PPS, r.AudioKbps = summarize(pps), summarize(akbps)
	return r, fps, loss
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func emit(v any) {
	data, _ := json.Marshal(v)
	emitMu.Lock() // one whole line at a time (rejoin and tick lines come from goroutines)
	defer emitMu.Unlock()
	os.Stdout.Write(append(data, '\n'))
}

func main() {
	c, err := parseFlags()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadviewers:", err)
		os.Exit(2)
	}
	if c.quiet {
		lksdk.SetLogger(logger.LogRLogger(logr.Discard()))
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	runStart := time.Now()
	clients := httpClients(c.sources)
	var viewers []*viewer
	var vmu sync.Mutex // viewers grows here and is read by the tick loop
	if c.tick > 0 {
		go tickLoop(ctx, c.tick, func() []*viewer {
			vmu.Lock()
			defer vmu.Unlock()
			return append([]*viewer(nil), viewers...)
		})
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, c.concurrency)
	interval := time.Duration(float64(time.Second) / c.ramp)
	var steps []stepReport
	stopped := ""

	for _, target := range c.steps {
		next := time.Now()
		for len(viewers) < target && ctx.Err() == nil {
			i := len(viewers)
			v := &viewer{id: i, identity: fmt.Sprintf("%s-%d", c.prefix, i),
				baseline: map[*trackStats]sample{}}
			if len(c.sources) > 0 {
				v.source = c.sources[i%len(c.sources)]
			}
			vmu.Lock()
			viewers = append(viewers, v)
			vmu.Unlock()
			client := clients[i%len(clients)]
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				v.join(ctx, c, client, runStart)
			}()
			next = next.Add(interval)
			time.Sleep(time.Until(next))
		}
		// joins of this step done (or failed), then settle
		for i := 0; i < c.concurrency; i++ {
			sem <- struct{}{}
		}
		for i := 0; i < c.concurrency; i++ {
			<-sem
		}
		if sleepCtx(ctx, c.settle) != nil {
			break
		}
		start := time.Now()
		for _, v := range viewers {
			v.mark(start)
		}
		emit(map[string]any{"type": "window_start", "viewers": len(viewers), "t": unix(start)})
		if sleepCtx(ctx, c.hold) != nil {
			break
		}
		r, fps, loss := buildStep(viewers, start, time.Now(), c, true)
		c.judge(&r, fps, loss)
		emit(r)
		steps = append(steps, r)
		if r.Saturated {
			stopped = r.Reason
			break
		}
	}
	if ctx.Err() != nil {
		stopped = "interrupted"
	}
	final := map[string]any{"type": "final", "steps": compact(steps), "stopped": stopped,
		"seconds": time.Since(runStart).Seconds(), "viewers": len(viewers),
		"config": map[string]any{"steps": c.steps, "ramp": c.ramp, "settle_s": c.settle.Seconds(),
			"hold_s": c.hold.Seconds(), "stop_fps": c.stopFPS, "stop_loss": c.stopLoss,
			"source_addrs": len(c.sources), "room": c.room}}
	if len(steps) > 0 {
		last := steps[len(steps)-1]
		final["last"] = last
	}
	if c.rejoin { // rejoins still going on: viewers that never watched again
		var open []*rejoinEvent
		for _, v := range viewers {
			if ev := v.unfinished(); ev != nil {
				open = append(open, ev)
			}
		}
		final["rejoins_unfinished"] = open
	}
	for _, v := range viewers {
		v.leave()
	}
	wg.Wait()
	emit(final)
	if c.out != "" {
		data, _ := json.MarshalIndent(final, "", " ")
		if err := os.WriteFile(c.out, data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "loadviewers: -out:", err)
			os.Exit(1)
		}
	}
}

// compact: the steps without their per-viewer lists (the last step keeps its own).
func compact(steps []stepReport) []stepReport {
	out := make([]stepReport, len(steps))
	for i, s := range steps {
		s.PerViewer = nil
		out[i] = s
	}
	return out
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
