package main

// Command-line options of the load viewers.

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

type config struct {
	web         string
	room        string
	livekitURL  string
	token       string
	tokens      []string
	from        string
	prefix      string
	steps       []int
	ramp        float64
	concurrency int
	settle      time.Duration
	hold        time.Duration
	stopFPS     float64
	stopLoss    float64
	stopQ       float64
	fullHeight  int
	sources     []string
	out         string
	quiet       bool
	quality     string
	rejoin      bool
	frozen      time.Duration
	tick        time.Duration
}

func parseFlags() (*config, error) {
	c := &config{}
	var n int
	var steps, sources, tokensFile string
	var duration time.Duration
	flag.StringVar(&c.web, "web", "", "web app base URL (http://127.0.0.1:8080); viewers join via its join API")
	flag.StringVar(&c.room, "room", "demo", "webinar room to join")
	flag.StringVar(&c.livekitURL, "livekit-url", "", "LiveKit URL to use instead of the one the join API returns")
	flag.StringVar(&c.token, "token", "", "join LiveKit with this token instead of the join API (needs -livekit-url)")
	flag.StringVar(&tokensFile, "tokens", "", "file with one token per line, used round-robin instead of the join API")
	flag.StringVar(&c.from, "from", "", "measure only this publisher's tracks (identity); default: the first video/audio track")
	flag.StringVar(&c.prefix, "prefix", "", "identity prefix (default: load-<pid>)")
	flag.IntVar(&n, "n", 10, "viewers (when -steps is not given)")
	flag.StringVar(&steps, "steps", "", "ramp plan: viewer counts to measure at, e.g. 25,50,100")
	flag.Float64Var(&c.ramp, "ramp", 20, "viewers added per second")
	flag.IntVar(&c.concurrency, "concurrency", 32, "joins in flight at once")
	flag.DurationVar(&c.settle, "settle", 5*time.Second, "wait after reaching a step before measuring")
	flag.DurationVar(&duration, "duration", 20*time.Second, "measuring window at each step (alias: -hold)")
	flag.DurationVar(&c.hold, "hold", 0, "measuring window at each step")
	flag.Float64Var(&c.stopFPS, "stop-fps", 0, "stop after a step where some viewer's fps is below this (0: never)")
	flag.Float64Var(&c.stopLoss, "stop-loss", 0, "stop after a step where some viewer's loss is above this fraction (0: never)")
	flag.Float64Var(&c.stopQ, "stop-quantile", 0.05, "share of viewers allowed past -stop-fps/-stop-loss (0: none)")
	flag.IntVar(&c.fullHeight, "full-height", 720, "height of the top layer, to name the layer received")
	flag.StringVar(&sources, "source-addrs", "", "local addresses for the join requests, round-robin: 127.0.1.1-127.0.1.40,127.0.2.1")
	flag.StringVar(&c.out, "out", "", "also write the final JSON report to this file")
	flag.BoolVar(&c.quiet, "quiet", true, "silence the SDK's logs")
	flag.StringVar(&c.quality, "quality", "", "ask the SFU for this simulcast layer: low, medium or high (default: the SFU decides)")
	flag.BoolVar(&c.rejoin, "rejoin", false, "rejoin through the join API as the viewer page does when LiveKit drops the viewer or its picture freezes (-frozen), naming the room lost; 4 s per connect, 1 s between tries")
	flag.DurationVar(&c.frozen, "frozen", 2500*time.Millisecond, "with -rejoin: no complete frame this long means the room's node is gone (the page's FROZEN_MS)")
	flag.DurationVar(&c.tick, "tick", 0, "print each viewer's frame count and room this often (type \"tick\"; 0: never)")
	flag.Parse()
	if c.hold == 0 {
		c.hold = duration
	}
	if steps == "" {
		c.steps = []int{n}
	} else {
		for _, s := range strings.Split(steps, ",") {
			v, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || v <= 0 {
				return nil, fmt.Errorf("-steps: %q is not a positive viewer count", s)
			}
			if len(c.steps) > 0 && v <= c.steps[len(c.steps)-1] {
				return nil, fmt.Errorf("-steps must increase (%d after %d)", v, c.steps[len(c.steps)-1])
			}
			c.steps = append(c.steps, v)
		}
	}
	if tokensFile != "" {
		data, err := os.ReadFile(tokensFile)
		if err != nil {
			return nil, fmt.Errorf("-tokens: %w", err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				c.tokens = append(c.tokens, line)
			}
		}
		if len(c.tokens) == 0 {
			return nil, fmt.Errorf("-tokens: %s holds no token", tokensFile)
		}
	}
	if c.token == "" && c.tokens == nil && c.web == "" {
		return nil, fmt.Errorf("give -web (join through the web app) or -token/-tokens with -livekit-url")
	}
	if (c.token != "" || c.tokens != nil) && c.livekitURL == "" {
		return nil, fmt.Errorf("-token/-tokens need -livekit-url")
	}
	if c.quality != "" && c.quality != "low" && c.quality != "medium" && c.quality != "high" {
		return nil, fmt.Errorf("-quality must be low, medium or high, not %q", c.quality)
	}
	if c.rejoin && c.web == "" {
		return nil, fmt.Errorf("-rejoin needs -web (it rejoins through the join API)")
	}
	if c.frozen <= 0 || c.tick < 0 {
		return nil, fmt.Errorf("-frozen must be positive and -tick not negative")
	}
	if c.ramp <= 0 || c.concurrency <= 0 {
		return nil, fmt.Errorf("-ramp and -concurrency must be positive")
	}
	var err error
	if c.sources, err = parseSources(sources); err != nil {
		return nil, err
	}
	if c.prefix == "" {
		c.prefix = fmt.Sprintf("load-%d", os.Getpid())
	}
	return c, nil
}

// parseSources expands "127.0.1.1-127.0.1.40,127.0.2.1" (ranges vary the last byte).
func parseSources(s string) ([]string, error) {
	var out []string
	if s == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a := net.ParseIP(lo).To4()
		if a == nil {
			return nil, fmt.Errorf("-source-addrs: %q is not an IPv4 address", lo)
		}
		if !isRange {
			out = append(out, a.String())
			continue
		}
		b := net.ParseIP(hi).To4()
		if b == nil || a[0] != b[0] || a[1] != b[1] || a[2] != b[2] || b[3] < a[3] {
			return nil, fmt.Errorf("-source-addrs: %q must be a.b.c.x-a.b.c.y with x <= y", part)
		}
		for x := int(a[3]); x <= int(b[3]); x++ {
			out = append(out, net.IPv4(a[0], a[1], a[2], byte(x)).String())
		}
	}
	return out, nil
}
