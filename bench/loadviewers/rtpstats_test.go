package main

import (
	"testing"
	"time"

	"github.com/pion/rtp"
)

// a VP8 keyframe's first packet: descriptor (X, S, PID 0; I with 15-bit picture id),
// frame tag (keyframe), start code, 1280x720
func vp8Key() []byte {
	return []byte{0x90, 0x80, 0x81, 0x23, 0x50, 0x2a, 0x00, 0x9d, 0x01, 0x2a, 0x00, 0x05, 0xd0, 0x02, 0x00}
}

func TestVP8KeyframeSize(t *testing.T) {
	w, h, ok := vp8KeyframeSize(vp8Key())
	if !ok || w != 1280 || h != 720 {
		t.Fatalf("got %dx%d %v", w, h, ok)
	}
	delta := vp8Key()
	delta[4] |= 0x01 // P bit: inter frame
	if _, _, ok := vp8KeyframeSize(delta); ok {
		t.Fatal("an inter frame read as a keyframe")
	}
}

func TestFramesCountOnlyWhenComplete(t *testing.T) {
	st := &trackStats{kind: "video", codec: "video/VP8"}
	now := time.Now()
	send := func(seq uint16, ts uint32, start, marker bool) {
		b := byte(0x00)
		if start {
			b = 0x10
		}
		st.onPacket(&rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: ts, Marker: marker},
			Payload: []byte{b, 0x01}}, 100, now, now)
	}
	send(65534, 1000, true, false) // frame 1: 3 packets across the wrap
	send(65535, 1000, false, false)
	send(0, 1000, false, true)
	send(1, 4600, true, false) // frame 2 loses its middle packet
	send(3, 4600, false, true)
	send(4, 8200, true, true) // frame 3: one packet
	s := st.take(now)
	if s.frames != 2 || s.seen != 3 {
		t.Fatalf("frames %d seen %d, want 2 and 3", s.frames, s.seen)
	}
	if s.expected != 7 || s.packets != 6 {
		t.Fatalf("expected %d packets %d, want 7 and 6", s.expected, s.packets)
	}
	send(2, 4600, false, false) // the retransmission completes frame 2
	if s = st.take(now); s.frames != 3 {
		t.Fatalf("frames %d after the retransmission, want 3", s.frames)
	}
}

func TestVP9SpatialLayerSize(t *testing.T) {
	key := []byte{0xAA, 0x80, 0x01, 0x04, 0x00, 0x50,
		0x01, 0x40, 0x00, 0xb4, 0x02, 0x80, 0x01, 0x68, 0x05, 0x00, 0x02, 0xd0}
	sid, sizes, ok := vp9Info(key)
	if !ok || sid != 2 || len(sizes) != 3 || sizes[1] != [2]int{640, 360} {
		t.Fatalf("sid %d sizes %v ok %v", sid, sizes, ok)
	}
	st := &trackStats{kind: "video", codec: "video/VP9"}
	now := time.Now()
	st.onPacket(&rtp.Packet{Header: rtp.Header{SequenceNumber: 1, Timestamp: 90, Marker: true},
		Payload: key}, 100, now, now)
	// next picture: only spatial layers 0 and 1 forwarded (a weaker link)
	for i, sid := range []byte{0, 1} {
		st.onPacket(&rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(2 + i), Timestamp: 3690,
			Marker: sid == 1}, Payload: []byte{0xA0 | 0x08*byte(1-i), 0x80, 0x02, sid << 1, 0x00}},
			100, now, now)
	}
	if st.width != 640 || st.height != 360 {
		t.Fatalf("size %dx%d, want 640x360", st.width, st.height)
	}
}
