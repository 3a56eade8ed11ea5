package main

// Every use of a server-sdk-go internal is in this file (sdk_internals_test.go notices
// when a new version moves it).
//
// Why: LocalParticipant.PublishTrack announces one video layer (HIGH at spatial layer 0)
// for any single-stream track, and livekit-server maps a subscriber's quality to a
// spatial layer from the announced layers: with one, every shard viewer would get the
// lowest spatial layer only. A VP9 SVC stream must be announced with its three spatial
// layers, as livekit-client does for a browser's SVC track; the SDK has no option for
// that (v2.19.0), so publishSVC sends the AddTrackRequest itself through the room's
// RTCEngine (an unexported field of LocalParticipant).

import (
	"errors"
	"reflect"
	"strings"
	"time"
	"unsafe"

	"github.com/livekit/protocol/livekit"
	lksdk "github.com/livekit/server-sdk-go/v2"
)

// engineOf returns the participant's RTCEngine (field "engine"), or nil if it moved.
func engineOf(lp *lksdk.LocalParticipant) *lksdk.RTCEngine {
	f := reflect.ValueOf(lp).Elem().FieldByName("engine")
	if !f.IsValid() || f.Type() != reflect.TypeOf((*lksdk.RTCEngine)(nil)) {
		return nil
	}
	return *(**lksdk.RTCEngine)(unsafe.Pointer(f.UnsafeAddr()))
}

// publishSVC publishes track (one VP9 stream with spatial layers) announcing layers and
// the packet trailer features its frames carry.
func publishSVC(room *lksdk.Room, track *lksdk.LocalTrack, name string,
	layers []*livekit.VideoLayer, trailer []livekit.PacketTrailerFeature) (*livekit.TrackInfo, error) {
	engine := engineOf(room.LocalParticipant)
	if engine == nil {
		return nil, errors.New("server-sdk-go moved LocalParticipant.engine (see sdk_internals.go)")
	}
	transport, ok := engine.Publisher()
	if !ok {
		return nil, lksdk.ErrNoPeerConnection
	}
	pc := transport.PeerConnection()
	sender, err := pc.AddTrack(track)
	if err != nil {
		return nil, err
	}
	mimeType := track.Codec().MimeType
	for _, tr := range pc.GetTransceivers() { // the track's codec first, as PublishTrack does
		if tr.Sender() == sender {
			codecs := sender.GetParameters().Codecs
			for i, c := range codecs {
				if strings.EqualFold(c.MimeType, mimeType) {
					codecs[0], codecs[i] = codecs[i], codecs[0]
					break
				}
			}
			_ = tr.SetCodecPreferences(codecs)
		}
	}
	top := layers[len(layers)-1]
	req := &livekit.AddTrackRequest{
		Cid: track.ID(), Name: name, Source: livekit.TrackSource_CAMERA,
		Type: livekit.TrackType_VIDEO, Width: top.Width, Height: top.Height, Layers: layers,
		SimulcastCodecs:       []*livekit.SimulcastCodec{{Codec: mimeType, Cid: track.ID(), Layers: layers}},
		PacketTrailerFeatures: trailer,
	}
	published := make(chan *livekit.TrackPublishedResponse, 1)
	engine.RegisterTrackPublishedListener(track.ID(), published)
	defer engine.UnregisterTrackPublishedListener(track.ID())
	if err := engine.SendAddTrack(req); err != nil {
		return nil, err
	}
	transport.Negotiate()
	select {
	case res := <-published:
		return res.Track, nil
	case <-time.After(10 * time.Second):
		return nil, lksdk.ErrTrackPublishTimeout
	}
}

// checkInternals fails when a new server-sdk-go moved what publishSVC relies on.
func checkInternals() error {
	f, ok := reflect.TypeOf(lksdk.LocalParticipant{}).FieldByName("engine")
	if !ok || f.Type != reflect.TypeOf((*lksdk.RTCEngine)(nil)) {
		return errors.New("server-sdk-go: LocalParticipant.engine (*RTCEngine) is gone")
	}
	return nil
}
