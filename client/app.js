// The browser client: microphone (AudioWorklet, ~100 ms frames) or a local file → websocket → captions.
"use strict";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token");
let socket = null;
let audio = null; // {context, stream, node} while the microphone runs
let fileTimer = null;
let finished = false; // the server sent end: every final is out

function setState(text, kind) {
  $("state").textContent = text;
  $("state").className = "state " + kind;
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function render(message) {
  const partial = $("partial");
  if (message.type === "partial") {
    partial.dataset.segment = message.segment;
    partial.querySelector(".stable").textContent = message.text.slice(0, message.stable_chars);
    partial.querySelector(".unstable").textContent = message.text.slice(message.stable_chars);
  } else if (message.type === "final") {
    const line = document.createElement("p");
    line.className = "final";
    line.textContent = message.text;
    $("finals").appendChild(line);
    if (partial.dataset.segment === String(message.segment)) {
      partial.querySelector(".stable").textContent = "";
      partial.querySelector(".unstable").textContent = "";
    }
  } else if (message.type === "error" && message.code === "unauthorized") {
    showError("This server needs a token: add ?token=… (the one the server was started with) to this page's " +
              "address and reload.");
  } else if (message.type === "error") {
    showError(message.code + ": " + message.message);
  } else if (message.type === "end") {
    finished = true;
    setState("finished", "closed");
  }
}

function connect(sampleRate) {
  return new Promise((resolve, reject) => {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + "/");
    socket.binaryType = "arraybuffer";
    finished = false;
    setState("connecting…", "idle");
    socket.onopen = () => {
      const config = { sample_rate: sampleRate, format: "pcm_f32le", partials: true, words: true };
      if (token) config.token = token;
      socket.send(JSON.stringify(config));
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "ready") {
        setState("captioning", "ready");
        resolve();
      } else {
        render(message);
      }
    };
    socket.onerror = () => showError("connection error");
    socket.onclose = (event) => {
      if (!finished) setState("closed" + (event.reason ? ": " + event.reason : ""), "closed");
      stopCapture();
      reject(new Error(event.reason || "closed"));
    };
  });
}

function send(samples) {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(samples.buffer);
}

function finish() {
  stopCapture();
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "eof" }));
  $("stop").disabled = true;
}

function stopCapture() {
  if (audio) {
    audio.stream.getTracks().forEach((track) => track.stop());
    audio.context.close();
    audio = null;
  }
  if (fileTimer) {
    clearInterval(fileTimer);
    fileTimer = null;
  }
  $("start").disabled = false;
}

async function startMicrophone() {
  showError("");
  $("start").disabled = true;
  try {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    const context = new AudioContext();
    await context.audioWorklet.addModule("worklet.js");
    const node = new AudioWorkletNode(context, "frame-chunker");
    const silent = context.createGain();
    silent.gain.value = 0;
    context.createMediaStreamSource(stream).connect(node).connect(silent).connect(context.destination);
    audio = { context, stream, node };
    await connect(context.sampleRate);
    node.port.onmessage = (event) => send(event.data);
    $("stop").disabled = false;
  } catch (error) {
    showError("cannot start the microphone: " + error.message);
    stopCapture();
  }
}

async function streamFile(file) {
  showError("");
  try {
    const context = new AudioContext();
    const decoded = await context.decodeAudioData(await file.arrayBuffer());
    await context.close();
    const samples = decoded.getChannelData(0);
    const frame = Math.round(decoded.sampleRate / 10);
    await connect(decoded.sampleRate);
    $("stop").disabled = false;
    $("start").disabled = true;
    let position = 0;
    fileTimer = setInterval(() => { // paced like live audio: a frame every 100 ms
      if (position >= samples.length) {
        finish();
        return;
      }
      send(samples.slice(position, position + frame));
      position += frame;
    }, 100);
  } catch (error) {
    showError("cannot stream " + file.name + ": " + error.message);
  }
}

$("start").onclick = startMicrophone;
$("stop").onclick = finish;
$("file").onchange = (event) => event.target.files[0] && streamFile(event.target.files[0]);
