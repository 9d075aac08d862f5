"""The clients of the caption server: the browser page (index.html, app.js, worklet.js, style.css,
served at / as package data) and the Python client behind ``streamer connect`` (connect.py)."""
