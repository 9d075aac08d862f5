"""model.py of the stand-in that deploy/local_triton.py serves: the exported model.onnx run by ONNX Runtime inside
Triton's Python backend, with the inputs, outputs and batching of the onnxruntime backend's config it was made
from. The dynamic batcher hands over several requests at once; requests of one shape run as one batch and
each gets its own rows back, as the onnxruntime backend does. Runs in the server's Python (the stub's
virtual environment), not in streamer's: it imports nothing of streamer.
"""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.inputs = [tensor["name"] for tensor in config["input"]]
        self.outputs = [tensor["name"] for tensor in config["output"]]
        threads = config.get("parameters", {}).get("intra_op_thread_count", {}).get("string_value", "0")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        path = Path(args["model_repository"]) / args["model_version"] / "model.onnx"
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def execute(self, requests):
        arrays = [[pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.inputs] for r in requests]
        responses = [None] * len(requests)
        for indices in same_shapes(arrays):
            try:
                outputs = self.run([np.concatenate([arrays[i][k] for i in indices]) for k in range(len(self.inputs))])
            except Exception as exc:  # noqa: BLE001 - the requests hear of it, the model stays up
                for i in indices:
                    responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(f"ONNX Runtime: {exc}"))
                continue
            start = 0
            for i in indices:
                rows = slice(start, start + len(arrays[i][0]))
                start = rows.stop
                responses[i] = pb_utils.InferenceResponse(
                    [pb_utils.Tensor(name, np.ascontiguousarray(out[rows])) for name, out in zip(self.outputs, outputs)])
        return responses

    def run(self, inputs):
        return self.session.run(self.outputs, dict(zip(self.inputs, inputs)))

    def finalize(self):
        self.session = None


def same_shapes(arrays):
    """Request indices grouped by the shape of their inputs beyond the batch dimension, in order."""
    groups = {}
    for i, tensors in enumerate(arrays):
        groups.setdefault(tuple(t.shape[1:] for t in tensors), []).append(i)
    return list(groups.values())
