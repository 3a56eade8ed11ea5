package main

// Receive-side RTP accounting for one track, without decoding: a frame is one RTP
// timestamp, and it counts as received (decodable) when its first packet (VP8 S bit with
// partition 0, VP9 B bit), its last packet (marker bit) and every sequence number in
// between arrived, retransmissions included. Loss is counted from gaps in the
// (SFU-rewritten, contiguous) sequence numbers; the picture size comes from VP8/VP9
// keyframe headers.

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/pion/rtp"
)

// trackStats is updated by the track's reader goroutine and sampled by the controller.
type trackStats struct {
	mu sync.Mutex

	kind  string // "video" | "audio"
	codec string // mime type

	packets  uint64
	bytes    uint64 // RTP payload + header bytes
	frames   uint64 // complete frames (video)
	seen     uint64 // distinct RTP timestamps, complete or not (video)
	markers  uint64 // packets with the marker bit (video)
	pending  map[uint32]*frameAcc
	started  bool
	firstSeq uint64 // extended
	highSeq  uint64 // extended highest sequence number seen
	lastTS   uint32
	haveTS   bool

	firstFrameAt time.Time
	lastFrameAt  time.Time
	maxGap       time.Duration // longest time between two new frames since the last sample
	tickGap      time.Duration // the same since the last tick (-tick)
	fifthFrameAt time.Time

	width, height int // from the latest keyframe (VP9: the highest spatial layer received)
	vp9Sizes      [][2]int
	vp9TS         uint32
	vp9MaxSID     int
	keyframes     uint64
	sizes         []sizeChange
}

// frameAcc collects the packets of one frame until it is complete.
type frameAcc struct {
	first            time.Time
	startSeq, endSeq uint64
	hasStart, hasEnd bool
	got              map[uint64]struct{}
}

type sizeChange struct {
	At     float64 `json:"t"` // seconds since the run started
	Width  int     `json:"width"`
	Height int     `json:"height"`
}

// sample is a snapshot of the counters; two snapshots give a window.
type sample struct {
	at       time.Time
	packets  uint64
	bytes    uint64
	frames   uint64
	seen     uint64
	markers  uint64
	expected uint64
	maxGap   time.Duration
	width    int
	height   int
}

func (s *trackStats) onPacket(p *rtp.Packet, size int, now time.Time, runStart time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.packets++
	s.bytes += uint64(size)
	seq := uint64(p.SequenceNumber)
	if !s.started {
		s.started = true
		s.firstSeq = seq
		s.highSeq = seq
	} else {
		ext := s.extSeq(seq)
		if ext > s.highSeq {
			s.highSeq = ext
		}
		if ext < s.firstSeq { // a reordered packet from before the first one
			s.firstSeq = ext
		}
	}
	if s.kind != "video" {
		return
	}
	if p.Marker {
		s.markers++
	}
	if !s.haveTS || int32(p.Timestamp-s.lastTS) > 0 {
		s.haveTS = true
		s.lastTS = p.Timestamp
		s.seen++
	}
	s.track(p, s.extSeq(seq), now)
	if s.codec == "video/VP9" || s.codec == "video/vp9" {
		s.vp9(p, now, runStart)
	}
	if w, h, ok := keyframeSize(s.codec, p.Payload); ok {
		s.keyframes++
		if w != s.width || h != s.height {
			s.width, s.height = w, h
			s.sizes = append(s.sizes, sizeChange{now.Sub(runStart).Seconds(), w, h})
		}
	}
}

// vp9 follows the spatial layers forwarded: the size is that of the highest spatial
// id of the last complete picture, from the scalability structure of the keyframes.
func (s *trackStats) vp9(p *rtp.Packet, now, runStart time.Time) {
	sid, sizes, ok := vp9Info(p.Payload)
	if !ok {
		return
	}
	if len(sizes) > 0 {
		s.vp9Sizes = sizes
		s.keyframes++
	}
	if p.Timestamp != s.vp9TS {
		s.vp9TS, s.vp9MaxSID = p.Timestamp, sid
	} else if sid > s.vp9MaxSID {
		s.vp9MaxSID = sid
	}
	if !p.Marker || s.vp9MaxSID >= len(s.vp9Sizes) {
		return
	}
	sz := s.vp9Sizes[s.vp9MaxSID]
	if sz[0] != s.width || sz[1] != s.height {
		s.width, s.height = sz[0], sz[1]
		s.sizes = append(s.sizes, sizeChange{now.Sub(runStart).Seconds(), sz[0], sz[1]})
	}
}

// extSeq: the extended form of a 16-bit sequence number, nearest the highest seen.
func (s *trackStats) extSeq(seq uint64) uint64 {
	ext := (s.highSeq &^ 0xffff) | seq
	if ext > s.highSeq+0x8000 && ext >= 0x10000 {
		ext -= 0x10000
	} else if ext+0x8000 < s.highSeq {
		ext += 0x10000
	}
	return ext
}

// track adds a packet to its frame and counts the frame when it is complete.
func (s *trackStats) track(p *rtp.Packet, seq uint64, now time.Time) {
	if s.pending == nil {
		s.pending = map[uint32]*frameAcc{}
	}
	f := s.pending[p.Timestamp]
	if f == nil {
		f = &frameAcc{first: now, got: map[uint64]struct{}{}}
		s.pending[p.Timestamp] = f
	}
	f.got[seq] = struct{}{}
	if isFrameStart(s.codec, p.Payload) {
		f.hasStart, f.startSeq = true, seq
	}
	if p.Marker {
		f.hasEnd, f.endSeq = true, seq
	}
	if f.hasStart && f.hasEnd && f.endSeq >= f.startSeq && uint64(len(f.got)) >= f.endSeq-f.startSeq+1 {
		delete(s.pending, p.Timestamp)
		s.frames++
		if s.frames == 1 {
			s.firstFrameAt = now
		} else {
			gap := now.Sub(s.lastFrameAt)
			s.maxGap = max(s.maxGap, gap)
			s.tickGap = max(s.tickGap, gap)
		}
		if s.frames == 5 {
			s.fifthFrameAt = now
		}
		s.lastFrameAt = now
	}
	if len(s.pending) > 64 { // frames that will never complete
		for ts, g := range s.pending {
			if now.Sub(g.first) > time.Second {
				delete(s.pending, ts)
			}
		}
	}
}

// isFrameStart: the packet carries the beginning of a frame (VP8: S bit and partition 0;
// VP9: B bit; other codecs: unknown, so every packet may start one).
func isFrameStart(codec string, b []byte) bool {
	if len(b) == 0 {
		return false
	}
	switch codec {
	case "video/VP8", "video/vp8":
		return b[0]&0x10 != 0 && b[0]&0x07 == 0
	case "video/VP9", "video/vp9":
		return b[0]&0x08 != 0
	}
	return true
}

// progress: the last complete frame, how many, the first and the fifth.
func (s *trackStats) progress() (last time.Time, frames uint64, first, fifth time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastFrameAt, s.frames, s.firstFrameAt, s.fifthFrameAt
}

func (s *trackStats) frameCount() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.frames
}

// tick: complete frames so far and the longest gap since the last tick (a stall going on
// included); restarts the tick's gap.
func (s *trackStats) tick(now time.Time) (uint64, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gap := s.tickGap
	if s.frames > 0 {
		gap = max(gap, now.Sub(s.lastFrameAt))
	}
	s.tickGap = 0
	return s.frames, gap
}

// take returns the counters and restarts the longest-gap measure for the next window.
func (s *trackStats) take(now time.Time) sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	gap := s.maxGap
	if s.haveTS {
		if open := now.Sub(s.lastFrameAt); open > gap { // a stall still going on
			gap = open
		}
	}
	s.maxGap = 0
	var expected uint64
	if s.started {
		expected = s.highSeq - s.firstSeq + 1
	}
	return sample{now, s.packets, s.bytes, s.frames, s.seen, s.markers, expected, gap, s.width,
		s.height}
}

// window describes what happened between two samples.
type window struct {
	Seconds  float64 `json:"seconds"`
	FPS      float64 `json:"fps"`        // complete frames per second
	Seen     float64 `json:"seen_fps"`   // frames with at least one packet, per second
	Complete float64 `json:"marker_fps"` // marker bits per second
	Loss     float64 `json:"loss"`       // fraction of expected packets not received
	Kbps     float64 `json:"kbps"`
	Packets  uint64  `json:"packets"`
	MaxGapMS float64 `json:"max_gap_ms"`
	Width    int     `json:"width,omitempty"`
	Height   int     `json:"height,omitempty"`
	Layer    string  `json:"layer,omitempty"`
}

func diff(a, b sample, fullHeight int) window {
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 {
		secs = 1e-9
	}
	w := window{Seconds: secs, Packets: b.packets - a.packets,
		FPS:      float64(b.frames-a.frames) / secs,
		Seen:     float64(b.seen-a.seen) / secs,
		Complete: float64(b.markers-a.markers) / secs,
		Kbps:     float64(b.bytes-a.bytes) * 8 / secs / 1000,
		MaxGapMS: float64(b.maxGap.Microseconds()) / 1000,
		Width:    b.width, Height: b.height, Layer: layerName(b.height, fullHeight)}
	exp := b.expected - a.expected
	got := b.packets - a.packets
	if exp > 0 && exp > got {
		w.Loss = float64(exp-got) / float64(exp)
	}
	return w
}

// layerName: LiveKit's simulcast qualities for a full-size height (high/medium/low).
func layerName(h, full int) string {
	switch {
	case h == 0:
		return ""
	case full <= 0:
		return ""
	case h*10 >= full*9:
		return "high"
	case h*10 >= full*4:
		return "medium"
	default:
		return "low"
	}
}

// keyframeSize reads the picture size of a keyframe's first packet (VP8 / VP9), or !ok.
func keyframeSize(codec string, payload []byte) (int, int, bool) {
	switch codec {
	case "video/VP8", "video/vp8":
		return vp8KeyframeSize(payload)
	}
	return 0, 0, false
}

// vp8KeyframeSize: RFC 7741 payload descriptor, then the VP8 frame tag and keyframe
// header (start code 9d 01 2a, 14-bit width and height).
func vp8KeyframeSize(b []byte) (int, int, bool) {
	if len(b) < 1 {
		return 0, 0, false
	}
	x := b[0]&0x80 != 0
	s := b[0]&0x10 != 0
	pid := b[0] & 0x07
	if !s || pid != 0 {
		return 0, 0, false
	}
	i := 1
	if x {
		if len(b) < 2 {
			return 0, 0, false
		}
		ext := b[1]
		i = 2
		if ext&0x80 != 0 { // I: picture id
			if len(b) <= i {
				return 0, 0, false
			}
			if b[i]&0x80 != 0 {
				i += 2
			} else {
				i++
			}
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			i++
		}
		if ext&0x30 != 0 { // T or K: TID/Y/KEYIDX
			i++
		}
	}
	p := b[i:]
	if len(p) < 10 || p[0]&0x01 != 0 { // P bit 0 = keyframe
		return 0, 0, false
	}
	if p[3] != 0x9d || p[4] != 0x01 || p[5] != 0x2a {
		return 0, 0, false
	}
	w := int(binary.LittleEndian.Uint16(p[6:8]) & 0x3fff)
	h := int(binary.LittleEndian.Uint16(p[8:10]) & 0x3fff)
	return w, h, true
}

// vp9Info reads a VP9 payload descriptor (RFC 9628): the packet's spatial layer id and,
// when the packet carries a scalability structure (keyframes), the size of every
// spatial layer. With SVC the SFU forwards layers 0..k of a frame, so the size a
// viewer gets is that of the highest spatial id in the frame.
func vp9Info(b []byte) (sid int, sizes [][2]int, ok bool) {
	if len(b) < 1 {
		return 0, nil, false
	}
	iBit, lBit, fBit := b[0]&0x80 != 0, b[0]&0x20 != 0, b[0]&0x10 != 0
	vBit := b[0]&0x02 != 0
	i := 1
	if iBit {
		if len(b) <= i {
			return 0, nil, false
		}
		if b[i]&0x80 != 0 {
			i += 2
		} else {
			i++
		}
	}
	if lBit {
		if len(b) <= i {
			return 0, nil, false
		}
		sid = int(b[i]>>1) & 0x07
		i++
		if !fBit {
			i++ // TL0PICIDX
		}
	}
	if fBit && b[0]&0x40 != 0 { // P_DIFF entries of a flexible-mode inter frame
		for len(b) > i {
			more := b[i]&0x01 != 0
			i++
			if !more {
				break
			}
		}
	}
	if !vBit {
		return sid, nil, true
	}
	if len(b) <= i {
		return sid, nil, true
	}
	ss := b[i]
	n := int(ss>>5) + 1
	i++
	if ss&0x10 == 0 { // no resolutions in it
		return sid, nil, true
	}
	for k := 0; k < n; k++ {
		if len(b) < i+4 {
			return sid, nil, true
		}
		sizes = append(sizes, [2]int{int(binary.BigEndian.Uint16(b[i : i+2])),
			int(binary.BigEndian.Uint16(b[i+2 : i+4]))})
		i += 4
	}
	return sid, sizes, true
}
