// Join a Janus VideoRoom as publisher `display` and publish the microphone, audio only.
// Every progress line starts with "[speaker] "; failures with "[speaker] FAIL ".
(function () {
  "use strict";

  const query = new URLSearchParams(window.location.search);
  const server = query.get("janus");
  const room = Number(query.get("room"));
  const display = query.get("display") || "speaker";

  function say(text) {
    console.log("[speaker] " + text);
    const status = document.getElementById("status");
    if (status) {
      status.textContent = text;
    }
  }

  function fail(what, err) {
    say("FAIL " + what + ": " + (typeof err === "string" ? err : JSON.stringify(err)));
  }

  let handle = null;

  function publish() {
    handle.createOffer({
      // The fake microphone plays a prepared file: keep Chromium's voice processing out of it.
      tracks: [{
        type: "audio",
        capture: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
        recv: false,
      }],
      success: function (jsep) {
        say("offer ready");
        handle.send({ message: { request: "configure", audio: true, video: false }, jsep: jsep });
      },
      error: function (err) { fail("createOffer", err); },
    });
  }

  function onMessage(msg, jsep) {
    if (msg.error) {
      fail("videoroom", msg.error);
    } else if (msg.videoroom === "joined") {
      say("joined room=" + msg.room + " id=" + msg.id);
      publish();
    } else if (msg.configured === "ok") {
      say("configured");
    }
    if (jsep) {
      handle.handleRemoteJsep({ jsep: jsep });
    }
  }

  function attach(janus) {
    janus.attach({
      plugin: "janus.plugin.videoroom",
      opaqueId: "roomwarden-test-speaker",
      success: function (h) {
        handle = h;
        say("attached handle=" + h.getId());
        h.send({ message: { request: "join", ptype: "publisher", room: room, display: display } });
      },
      error: function (err) { fail("attach", err); },
      iceState: function (state) { say("ice " + state); },
      webrtcState: function (on) { say("webrtc " + (on ? "up" : "down")); },
      mediaState: function (medium, on) { say("media " + medium + " " + (on ? "on" : "off")); },
      onlocaltrack: function (track, on) { say("local track " + track.kind + " " + on); },
      onmessage: onMessage,
      oncleanup: function () { say("cleanup"); },
    });
  }

  Janus.init({
    debug: ["warn", "error"],
    callback: function () {
      if (!Janus.isWebrtcSupported()) {
        fail("init", "no WebRTC");
        return;
      }
      if (!navigator.mediaDevices) {
        fail("init", "no navigator.mediaDevices (page origin not treated as secure?)");
        return;
      }
      say("init server=" + server + " room=" + room + " display=" + display);
      const janus = new Janus({
        server: server,
        iceServers: [], // host candidates only: no STUN/TURN (janus.js has no default here)
        success: function () { attach(janus); },
        error: function (err) { fail("session", err); },
        destroyed: function () { say("destroyed"); },
      });
    },
  });
})();
