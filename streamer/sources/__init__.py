"""Audio sources: ffmpeg (files, URLs, live streams on their own clock) and the microphone. Only sources do I/O."""
