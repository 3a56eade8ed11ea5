// svcrelay: the stage's avatar video (VP9 SVC, all spatial layers) copied packet by
// packet into an audience shard room, without decoding or encoding.
//
// It joins the stage room as a hidden subscriber of one participant's video and the
// shard room as a publisher of one VP9 track, and writes every RTP packet it receives
// into that track (header extensions dropped: their ids were negotiated on the other
// connection; livekit-server reads the VP9 payload descriptor's layer ids instead). The
// shard's SFU then picks spatial layers per viewer, as the stage's does. Keyframe
// requests (PLI/FIR) from the shard go upstream to the stage's publisher; a REMB every
// second tells the stage SFU to send the relay every layer.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

type relay struct {
	from, name     string
	width, height  int
	spatial        int
	dst            *lksdk.Room
	mu             sync.Mutex
	out            *lksdk.LocalTrack
	srcSSRC        webrtc.SSRC
	srcParticipant *lksdk.RemoteParticipant
	packets        uint64
	plis           uint64
	layers         [4]uint64
}

func (r *relay) onTrack(track *webrtc.TrackRemote, pub *lksdk.RemoteTrackPublication,
	rp *lksdk.RemoteParticipant) {
	if rp.Identity() != r.from || track.Kind() != webrtc.RTPCodecTypeVideo {
		return
	}
	r.mu.Lock()
	if r.out != nil { // the stage's track was published again: start afresh (exit 3)
		r.mu.Unlock()
		fmt.Println(`{"event":"source changed"}`)
		os.Exit(3)
	}
	out, err := lksdk.NewLocalTrack(track.Codec().RTPCodecCapability,
		lksdk.WithRTCPHandler(r.onRTCP))
	if err != nil {
		fatal("local track: %v", err)
	}
	// the frames carry a metadata trailer only if the stage's track says so: announce the same
	if _, err := publishSVC(r.dst, out, r.name, svcLayers(r.width, r.height, r.spatial),
		pub.TrackInfo().GetPacketTrailerFeatures()); err != nil {
		fatal("publish into the shard: %v", err)
	}
	r.out = out
	r.srcSSRC, r.srcParticipant = webrtc.SSRC(track.SSRC()), rp
	r.mu.Unlock()
	fmt.Printf(`{"event":"relaying","codec":%q,"ssrc":%d}`+"\n", track.Codec().MimeType, track.SSRC())
	rp.WritePLI(webrtc.SSRC(track.SSRC()))
	for {
		pkt, _, err := track.ReadRTP()
		if err != nil {
			fmt.Println(`{"event":"source ended"}`)
			os.Exit(3)
		}
		pkt.Extension, pkt.Extensions = false, nil
		if sid := vp9SpatialID(pkt.Payload); sid >= 0 && sid < 4 {
			r.mu.Lock()
			r.layers[sid]++
			r.mu.Unlock()
		}
		if err := out.WriteRTP(pkt, nil); err != nil {
			continue
		}
		r.mu.Lock()
		r.packets++
		r.mu.Unlock()
	}
}

func (r *relay) onRTCP(p rtcp.Packet) {
	switch p.(type) {
	case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
		r.mu.Lock()
		rp, ssrc := r.srcParticipant, r.srcSSRC
		r.plis++
		r.mu.Unlock()
		if rp != nil {
			rp.WritePLI(ssrc)
		}
	}
}

// vp9SpatialID reads the spatial layer id from a VP9 payload descriptor (RFC 9628), or -1.
func vp9SpatialID(b []byte) int {
	if len(b) < 2 || b[0]&0x20 == 0 { // L: layer indices present
		return -1
	}
	i := 1
	if b[0]&0x80 != 0 { // I: picture id
		if b[1]&0x80 != 0 {
			i += 2
		} else {
			i++
		}
	}
	if len(b) <= i {
		return -1
	}
	return int(b[i]>>1) & 0x07
}

// svcLayers: the announced layers, lowest first (each spatial layer halves the size).
func svcLayers(width, height, spatial int) []*livekit.VideoLayer {
	qualities := []livekit.VideoQuality{livekit.VideoQuality_LOW, livekit.VideoQuality_MEDIUM,
		livekit.VideoQuality_HIGH}
	layers := make([]*livekit.VideoLayer, 0, spatial)
	for i := range spatial {
		div := 1 << (spatial - 1 - i)
		layers = append(layers, &livekit.VideoLayer{
			Quality: qualities[len(qualities)-spatial+i], Width: uint32(width / div),
			Height: uint32(height / div), SpatialLayer: int32(i)})
	}
	return layers
}

func fatal(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "svcrelay: "+format+"\n", a...)
	os.Exit(1)
}

func main() {
	url := flag.String("url", os.Getenv("LIVEKIT_URL"), "LiveKit URL (ws://...)")
	srcToken := flag.String("src-token", "", "token for the stage room (subscribe only)")
	dstToken := flag.String("dst-token", "", "token for the shard room (publish video)")
	from := flag.String("from", "", "identity whose video is relayed")
	name := flag.String("name", "avatar-video", "name of the track in the shard")
	width := flag.Int("width", 1280, "top layer width")
	height := flag.Int("height", 720, "top layer height")
	spatial := flag.Int("spatial", 3, "spatial layers in the stream (1-3)")
	rembBps := flag.Uint64("remb", 5_000_000, "bitrate the relay tells the stage SFU it can take")
	checkSDK := flag.Bool("check-sdk", false, "only check that the SDK internals used are there")
	flag.Parse()
	if *checkSDK {
		if err := checkInternals(); err != nil {
			fatal("%v", err)
		}
		fmt.Println("ok")
		return
	}
	if *url == "" || *srcToken == "" || *dstToken == "" || *from == "" {
		fatal("-url, -src-token, -dst-token and -from are required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if *spatial < 1 || *spatial > 3 {
		fatal("-spatial must be 1, 2 or 3, not %d", *spatial)
	}
	r := &relay{from: *from, name: *name, width: *width, height: *height, spatial: *spatial}
	gone := make(chan string, 2)
	dstCB := lksdk.NewRoomCallback()
	dstCB.OnDisconnected = func() { gone <- "shard" }
	dst, err := lksdk.ConnectToRoomWithToken(*url, *dstToken, dstCB,
		lksdk.WithAutoSubscribe(false))
	if err != nil {
		fatal("join the shard: %v", err)
	}
	defer dst.Disconnect()
	r.dst = dst
	cb := lksdk.NewRoomCallback()
	cb.OnTrackSubscribed = r.onTrack
	cb.OnDisconnected = func() { gone <- "stage" }
	src, err := lksdk.ConnectToRoomWithToken(*url, *srcToken, cb, lksdk.WithAutoSubscribe(true))
	if err != nil {
		fatal("join the stage: %v", err)
	}
	defer src.Disconnect()
	fmt.Println(`{"event":"joined"}`)
	// no source within a while (the bot's stage track missing): exit, to be started again
	go func() {
		time.Sleep(20 * time.Second)
		r.mu.Lock()
		started := r.out != nil
		r.mu.Unlock()
		if !started {
			fmt.Println(`{"event":"no source"}`)
			os.Exit(5)
		}
	}()

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case room := <-gone: // the bot starts the relay again
			fmt.Printf(`{"event":"disconnected","room":%q}`+"\n", room)
			src.Disconnect()
			dst.Disconnect()
			os.Exit(4)
		case <-tick.C:
			r.mu.Lock()
			ssrc := r.srcSSRC
			fmt.Printf(`{"event":"stats","packets":%d,"plis":%d,"layers":%v}`+"\n", r.packets, r.plis, r.layers)
			r.mu.Unlock()
			if pc := src.LocalParticipant.GetSubscriberPeerConnection(); pc != nil && ssrc != 0 {
				_ = pc.WriteRTCP([]rtcp.Packet{&rtcp.ReceiverEstimatedMaximumBitrate{
					Bitrate: float32(*rembBps), SSRCs: []uint32{uint32(ssrc)}}})
			}
		}
	}
}
