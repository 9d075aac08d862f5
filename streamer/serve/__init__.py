"""The caption server: websocket protocol, sessions, broadcast to viewers, Prometheus metrics."""
