"""Captions out: subtitle cues by Norwegian practice, SRT/WebVTT/JSONL writers, files that grow as people speak."""
