// The broadcast's viewer: roll-up captions (two lines) of one input, the video beside them when given.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const LINES = 2;
let current = null; // the line being spoken: {segment, element}

function setState(text, kind) {
  $("state").textContent = text;
  $("state").className = "state " + kind;
}

function showVideo(url) {
  if (!url || !$("video").hidden) return;
  $("video").src = url;
  $("video").hidden = false;
}

function line(segment) {
  // the line of a caption: the current one, or a new one that rolls the oldest off
  if (current && current.segment === segment) return current.element;
  const element = document.createElement("p");
  element.className = "line";
  element.innerHTML = '<span class="stable"></span><span class="unstable"></span>';
  $("rollup").appendChild(element);
  while ($("rollup").children.length > LINES) $("rollup").removeChild($("rollup").firstChild);
  current = { segment, element };
  return element;
}

function render(message) {
  if (message.type === "partial") {
    if (!message.text && !(current && current.segment === message.segment)) return;
    const element = line(message.segment);
    element.querySelector(".stable").textContent = message.text.slice(0, message.stable_chars);
    element.querySelector(".unstable").textContent = message.text.slice(message.stable_chars);
  } else if (message.type === "final") {
    const element = line(message.segment); // the final takes its partial's place: no jump
    element.querySelector(".stable").textContent = message.text;
    element.querySelector(".unstable").textContent = "";
    element.classList.add("final");
    current = null;
  } else if (message.type === "error") {
    $("error").textContent = message.code + ": " + message.message;
    $("error").hidden = false;
  } else if (message.type === "end") {
    setState("the broadcast has ended", "closed");
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const token = params.get("token");
  const socket = new WebSocket(scheme + location.host + "/live" + (token ? "?token=" + encodeURIComponent(token) : ""));
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "ready") {
      setState("live", "ready");
      showVideo(params.get("video") || message.video);
    } else {
      render(message);
    }
  };
  socket.onclose = (event) => {
    if ($("state").textContent !== "the broadcast has ended") {
      setState("disconnected" + (event.reason ? ": " + event.reason : "") + "; reconnecting…", "closed");
      setTimeout(connect, 3000);
    }
  };
}

connect();
