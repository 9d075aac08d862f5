"""Window lengths bucketed to a few fixed shapes, for accelerators.

A GPU runtime plans kernels, workspaces and memory per input shape: a batch padded to one of a few
lengths reuses them call after call, where every new length would pay for a new plan (cuDNN's
algorithm search, a new allocation). Windows are right-padded with an attention mask, so a padded
row's logits equal a lone run's (fp32, fp16; not int8, whose activation scale is per call). The
batcher puts windows of one bucket in a call; the backend pads the call to the bucket.

Streaming windows are mostly one length (commit left + hop + right context, 2.9 s by default), with
shorter ones at a segment's start and longer ones where a commit waited for a word to end; offline
chunks are 30 s. The default buckets cover those with at most ~25% padding above 2 s.
"""

from __future__ import annotations

from ..errors import StreamerError

# rows: a call's batch is padded to the next of these (a GPU's kernels and cuDNN's algorithm choice are per
# shape, and calls carry any number of windows from 1 to max_batch; at full load calls are full anyway)
GPU_ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
GPU_BUCKETS_MS = (1000, 2000, 3000, 4000, 5000, 6000, 8000, 10000, 12000, 16000, 20000, 24000, 32000)


def check_buckets(buckets_ms: tuple[int, ...]) -> None:
    if any(b <= 0 for b in buckets_ms) or list(buckets_ms) != sorted(set(buckets_ms)):
        raise StreamerError(f"length buckets must be positive and increasing (ms), not {buckets_ms}")


def to_samples(buckets_ms: tuple[int, ...], sample_rate: int) -> tuple[int, ...]:
    check_buckets(buckets_ms)
    return tuple(ms * sample_rate // 1000 for ms in buckets_ms)


def bucket_of(n_samples: int, buckets: tuple[int, ...]) -> int:
    """The padded length of a window: the smallest bucket that holds it; a window longer than every
    bucket is padded to a multiple of the largest (no buckets: its own length)."""
    for bucket in buckets:
        if n_samples <= bucket:
            return bucket
    if not buckets:
        return n_samples
    return -(-n_samples // buckets[-1]) * buckets[-1]


def rows_of(n_rows: int, buckets: tuple[int, ...]) -> int:
    """The padded batch size of a call: the smallest row bucket that holds it (none, or more than the largest:
    its own)."""
    return next((bucket for bucket in buckets if n_rows <= bucket), n_rows)
