package main

// One receive-only viewer: joins through the web app's join API (as a browser page does),
// connects to LiveKit with the token it got, subscribes to everything and reads RTP.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

type joinAnswer struct {
	Token       string `json:"token"`
	URL         string `json:"url"`
	Identity    string `json:"identity"`
	Claim       string `json:"claim"`
	LivekitRoom string `json:"livekit_room"` // the audience shard it was sent to
}

type viewer struct {
	id       int
	identity string
	source   string // local address its join request came from

	mu          sync.Mutex
	room        *lksdk.Room
	joinStart   time.Time
	joinedAPI   time.Time
	connected   time.Time
	err         string
	video       *trackStats
	audio       *trackStats
	publisher   string
	videoTracks int
	baseline    map[*trackStats]sample // counters at the start of the current window

	// -rejoin (rejoin.go): what the page keeps between joins, and the current session
	claim      string
	lkRoom     string       // the LiveKit room of the current session
	gen        int          // session number; events of an older session are ignored
	dropped    bool         // LiveKit disconnected the current session
	prevFrames uint64       // complete video frames of the sessions before this one
	pending    *rejoinEvent // a rejoin not yet watching again
}

// httpClients: one client per local source address (a per-address join limit sees many
// clients, as it would on the internet).
func httpClients(addrs []string) []*http.Client {
	if len(addrs) == 0 {
		addrs = []string{""}
	}
	out := make([]*http.Client, len(addrs))
	for i, a := range addrs {
		dialer := &net.Dialer{Timeout: 10 * time.Second}
		if a != "" {
			dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(a)}
		}
		out[i] = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			DialContext: dialer.DialContext, MaxIdleConnsPerHost: 16,
		}}
	}
	return out
}

func (v *viewer) join(ctx context.Context, cfg *config, client *http.Client, runStart time.Time) {
	v.mu.Lock()
	v.joinStart = time.Now()
	v.mu.Unlock()
	if err := v.connect(ctx, cfg, client, runStart, "", 30*time.Second); err != nil {
		v.fail(err.Error())
		return
	}
	if cfg.rejoin {
		go v.watch(ctx, cfg, client, runStart)
	}
}

// connect: a token (the join API, naming the room lost if any) and a LiveKit session
// with it, given at most connectTimeout; it becomes the viewer's current session.
func (v *viewer) connect(ctx context.Context, cfg *config, client *http.Client, runStart time.Time,
	lost string, connectTimeout time.Duration) error {
	url, token := cfg.livekitURL, cfg.token
	if cfg.tokens != nil {
		token = cfg.tokens[v.id%len(cfg.tokens)]
	}
	if token == "" {
		ans, err := v.callJoinAPI(ctx, cfg, client, lost)
		if err != nil {
			return fmt.Errorf("join api: %w", err)
		}
		token = ans.Token
		if url == "" {
			url = ans.URL
		}
		v.mu.Lock()
		v.claim, v.lkRoom = ans.Claim, ans.LivekitRoom
		if ans.Identity != "" {
			v.identity = ans.Identity
		}
		v.mu.Unlock()
	}
	v.mu.Lock()
	v.joinedAPI = time.Now()
	v.gen++
	gen := v.gen
	v.mu.Unlock()

	cb := lksdk.NewRoomCallback()
	cb.OnTrackSubscribed = func(track *webrtc.TrackRemote, pub *lksdk.RemoteTrackPublication,
		rp *lksdk.RemoteParticipant) {
		if cfg.from != "" && rp.Identity() != cfg.from {
			return
		}
		st := &trackStats{kind: track.Kind().String(), codec: track.Codec().MimeType}
		v.mu.Lock()
		if gen != v.gen { // a session this viewer left
			v.mu.Unlock()
			go drain(track)
			return
		}
		if st.kind == "video" {
			if v.video != nil { // one video track per viewer is measured: the first one
				v.mu.Unlock()
				go drain(track)
				return
			}
			v.video = st
			v.publisher = rp.Identity()
			v.videoTracks++
		} else {
			if v.audio != nil {
				v.mu.Unlock()
				go drain(track)
				return
			}
			v.audio = st
		}
		v.mu.Unlock()
		if st.kind == "video" && cfg.quality != "" {
			q := map[string]livekit.VideoQuality{"low": livekit.VideoQuality_LOW,
				"medium": livekit.VideoQuality_MEDIUM, "high": livekit.VideoQuality_HIGH}[cfg.quality]
			if err := pub.SetVideoQuality(q); err != nil {
				v.fail("set quality: " + err.Error())
			}
		}
		go read(track, st, runStart)
	}
	cb.OnDisconnected = func() {
		if !cfg.rejoin {
			v.fail("disconnected")
			return
		}
		v.mu.Lock()
		if gen == v.gen {
			v.dropped = true
		}
		v.mu.Unlock()
	}
	room, err := lksdk.ConnectToRoomWithToken(url, token, cb,
		lksdk.WithAutoSubscribe(true), lksdk.WithConnectTimeout(connectTimeout))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	v.mu.Lock()
	v.room = room
	v.connected = time.Now()
	v.mu.Unlock()
	return nil
}

func (v *viewer) callJoinAPI(ctx context.Context, cfg *config, client *http.Client, lost string) (*joinAnswer, error) {
	v.mu.Lock()
	fields := map[string]string{"identity": v.identity, "role": "viewer"}
	if v.claim != "" { // the page's claim keeps its identity (and its seat)
		fields["claim"] = v.claim
	}
	v.mu.Unlock()
	if lost != "" { // the room whose node was lost: the API sends it elsewhere
		fields["lost"] = lost
	}
	body, _ := json.Marshal(fields)
	endpoint := strings.TrimRight(cfg.web, "/") + "/api/webinars/" + cfg.room + "/join"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d %s", resp.StatusCode, strings.TrimSpace(string(data)))
	}
	var ans joinAnswer
	if err := json.Unmarshal(data, &ans); err != nil || ans.Token == "" {
		return nil, fmt.Errorf("answer without a token: %s", data)
	}
	return &ans, nil
}

func (v *viewer) fail(msg string) {
	v.mu.Lock()
	if v.err == "" {
		v.err = msg
	}
	v.mu.Unlock()
}

func (v *viewer) leave() {
	v.mu.Lock()
	room := v.room
	v.mu.Unlock()
	if room != nil {
		room.Disconnect()
	}
}

func read(track *webrtc.TrackRemote, st *trackStats, runStart time.Time) {
	buf := make([]byte, 1500)
	var p rtp.Packet
	for {
		n, _, err := track.Read(buf)
		if err != nil {
			return
		}
		if err := p.Unmarshal(buf[:n]); err != nil {
			continue
		}
		st.onPacket(&p, n, time.Now(), runStart)
	}
}

func drain(track *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	for {
		if _, _, err := track.Read(buf); err != nil {
			return
		}
	}
}

// mark starts a measuring window for this viewer.
func (v *viewer) mark(now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.baseline = map[*trackStats]sample{}
	for _, st := range []*trackStats{v.video, v.audio} {
		if st != nil {
			v.baseline[st] = st.take(now)
		}
	}
}

// viewerReport is one viewer's line in a step or final report.
type viewerReport struct {
	ID           int          `json:"id"`
	Identity     string       `json:"identity"`
	Source       string       `json:"source,omitempty"`
	Error        string       `json:"error,omitempty"`
	Publisher    string       `json:"publisher,omitempty"`
	JoinAPIMS    float64      `json:"join_api_ms,omitempty"`
	ConnectMS    float64      `json:"connect_ms,omitempty"`
	FirstFrameMS float64      `json:"first_frame_ms,omitempty"` // join start -> first video frame
	Video        *window      `json:"video,omitempty"`
	Audio        *window      `json:"audio,omitempty"`
	Codec        string       `json:"codec,omitempty"`
	Keyframes    uint64       `json:"keyframes,omitempty"`
	Sizes        []sizeChange `json:"sizes,omitempty"`
}

// report: the window since mark() (nil baseline: since the track began).
func (v *viewer) report(now time.Time, fullHeight int, withSizes bool) viewerReport {
	v.mu.Lock()
	defer v.mu.Unlock()
	r := viewerReport{ID: v.id, Identity: v.identity, Source: v.source, Error: v.err,
		Publisher: v.publisher}
	if !v.joinedAPI.IsZero() {
		r.JoinAPIMS = ms(v.joinedAPI.Sub(v.joinStart))
	}
	if !v.connected.IsZero() {
		r.ConnectMS = ms(v.connected.Sub(v.joinedAPI))
	}
	for _, st := range []*trackStats{v.video, v.audio} {
		if st == nil {
			continue
		}
		cur := st.take(now)
		base, ok := v.baseline[st]
		if !ok {
			st.mu.Lock()
			base = sample{at: st.firstFrameAt}
			if base.at.IsZero() {
				base.at = v.joinStart
			}
			st.mu.Unlock()
		}
		w := diff(base, cur, fullHeight)
		v.baseline[st] = cur
		if st.kind == "video" {
			r.Video = &w
			st.mu.Lock()
			r.Codec = st.codec
			r.Keyframes = st.keyframes
			if !st.firstFrameAt.IsZero() {
				r.FirstFrameMS = ms(st.firstFrameAt.Sub(v.joinStart))
			}
			if withSizes {
				r.Sizes = append([]sizeChange(nil), st.sizes...)
			}
			st.mu.Unlock()
		} else {
			w.FPS, w.Seen, w.Complete, w.MaxGapMS, w.Layer = 0, 0, 0, 0, ""
			r.Audio = &w
		}
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
