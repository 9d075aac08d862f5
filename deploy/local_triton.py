"""A real NVIDIA Triton Inference Server on this machine's CPU, on loopback, for tests, benchmarks and development
without a GPU or a container.

The `nvidia-pytriton` package ships tritonserver 2.51 (dynamic batching, gRPC and HTTP, metrics) with the
Python backend only, not the onnxruntime backend that `streamer export --triton-repo` writes its config for.
So the repository is served through a stand-in: each model's config.pbtxt as it was written (inputs, outputs,
max_batch_size, dynamic batching, instance groups) with `backend: "python"`, and a model.py
(deploy/python_model.py) that runs the same model.onnx with ONNX Runtime, a batch the dynamic batcher formed
as one run, as the onnxruntime backend does. With the official container (deploy/compose.yaml) the repository
is served as written.

The Python backend's stub links the system's libpython3.11, so the server runs from a virtual environment
made with /usr/bin/python3.11 that holds nvidia-pytriton and onnxruntime (a venv of another 3.11 build fails
with "'_thread.RLock' object has no attribute '_recursion_count'"). .ci/run makes it in
~/.cache/streamer-triton/venv; $STREAMER_TRITON_VENV names another.

    python deploy/local_triton.py --repo REPO            # gRPC on 127.0.0.1:8001, HTTP 8000, metrics 8002
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_VENV = Path.home() / ".cache" / "streamer-triton" / "venv"
SYSTEM_PYTHON = "/usr/bin/python3.11"


def venv_path() -> Path:
    return Path(os.environ.get("STREAMER_TRITON_VENV") or DEFAULT_VENV)


@dataclass(frozen=True)
class Distribution:
    """tritonserver and its libraries inside the venv's nvidia-pytriton."""

    venv: Path
    site: Path  # the venv's site-packages

    @property
    def server_dir(self) -> Path:
        return self.site / "pytriton" / "tritonserver"

    @property
    def stub(self) -> Path:
        version = self.site.parent.name.removeprefix("python")  # lib/python3.11/site-packages
        return self.server_dir / "python_backend_stubs" / version / "triton_python_backend_stub"

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env["PATH"] = f"{self.venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"  # the stub finds the venv's Python
        env["LD_LIBRARY_PATH"] = ":".join(filter(None, [str(self.site / "nvidia_pytriton.libs"),
                                                        env.get("LD_LIBRARY_PATH")]))
        return env


def find_distribution(venv: Path | None = None) -> tuple[Distribution | None, str]:
    """The server in the venv, or None and why it cannot run here (what a test's skip says)."""
    venv = venv or venv_path()
    sites = sorted(venv.glob("lib/python3.*/site-packages"))
    if not sites:
        return None, (f"no virtual environment for Triton at {venv}: make one with {SYSTEM_PYTHON} -m venv and "
                      "install nvidia-pytriton and onnxruntime in it (.ci/run does)")
    dist = Distribution(venv, sites[0])
    for needed, what in ((dist.server_dir / "bin" / "tritonserver", "nvidia-pytriton"), (dist.stub, "a Python "
                         "backend stub for this Python"), (dist.site / "onnxruntime", "onnxruntime")):
        if not needed.exists():
            return None, f"{venv} has no {what} ({needed} is missing)"
    return dist, ""


def standin_repo(repo: Path, out: Path) -> Path:
    """out: every model of repo as written but for `backend: "python"` in its config, its version folders'
    model.onnx linked, and deploy/python_model.py as model.py beside each."""
    out.mkdir(parents=True, exist_ok=True)
    for config in sorted(Path(repo).glob("*/config.pbtxt")):
        folder = out / config.parent.name  # what lies beside the versions too (manifest, vocabulary), as served
        shutil.copytree(config.parent, folder, ignore=lambda at, names: [n for n in names if n.isdigit()]
                        if Path(at) == config.parent else [])
        text = config.read_text(encoding="utf-8")
        text, count = re.subn(r'^backend: "onnxruntime"$', 'backend: "python"', text, flags=re.M)
        if count != 1:
            raise ValueError(f"{config} is not a config for the onnxruntime backend: write it with streamer export")
        (folder / "config.pbtxt").write_text(f"# stand-in: the onnxruntime config below, run by Python + ONNX "
                                             f"Runtime (deploy/local_triton.py)\n{text}", encoding="utf-8")
        for version in (p for p in config.parent.iterdir() if p.is_dir() and p.name.isdigit()):
            (folder / version.name).mkdir()
            (folder / version.name / "model.onnx").symlink_to((version / "model.onnx").resolve())
            shutil.copyfile(HERE / "python_model.py", folder / version.name / "model.py")
    return out


def free_ports(count: int) -> list[int]:
    """count different ports on 127.0.0.1 that nothing listened on a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class LocalTriton:
    """tritonserver on 127.0.0.1 serving the stand-in of a repository; stop() and start() again keep the ports."""

    def __init__(self, repo: Path, dist: Distribution, grpc_port: int = 0, http_port: int = 0,
                 metrics_port: int = 0, log_path: Path | None = None):
        self.dist = dist
        self._work = Path(tempfile.mkdtemp(prefix="streamer-triton-"))
        self.repo = standin_repo(repo, self._work / "repo")
        self.backends = self._backend_dir()
        free = iter(free_ports(3))
        self.grpc_port, self.http_port, self.metrics_port = (p or next(free) for p in (grpc_port, http_port,
                                                                                        metrics_port))
        self.log_path = log_path or self._work / "tritonserver.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def _backend_dir(self) -> Path:
        """The Python backend with the stub for the venv's Python (nvidia-pytriton keeps one per version)."""
        python = self._work / "backends" / "python"
        python.mkdir(parents=True)
        shipped = self.dist.server_dir / "backends" / "python"
        for source in (shipped / "libtriton_python.so", shipped / "triton_python_backend_utils.py", self.dist.stub):
            (python / source.name).symlink_to(source)
        return python.parent

    def start(self, timeout_s: float = 120.0) -> "LocalTriton":
        command = [str(self.dist.server_dir / "bin" / "tritonserver"), "--model-repository", str(self.repo),
                   "--backend-directory", str(self.backends), "--grpc-address", "127.0.0.1",
                   "--grpc-port", str(self.grpc_port), "--http-address", "127.0.0.1", "--http-port",
                   str(self.http_port), "--metrics-address", "127.0.0.1", "--metrics-port", str(self.metrics_port),
                   "--exit-timeout-secs", "5"]
        with open(self.log_path, "a") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.dist.env(),
                                            start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"tritonserver did not become ready; its log: {self.log_path}\n{self.log_tail()}")
            time.sleep(0.2)
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/v2/health/ready", timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as reply:
            return reply.read().decode()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        """Gone at once, as a crashed server or a lost node: the stub processes with it. The shared memory the
        Python backend would have removed on a clean exit is removed here."""
        if self.process is not None and self.process.poll() is None:
            regions = shared_memory_of(self.process.pid)
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            for region in regions:
                region.unlink(missing_ok=True)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._work, ignore_errors=True)

    def __enter__(self) -> "LocalTriton":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def shared_memory_of(pgid: int) -> set[Path]:
    """The /dev/shm regions the processes of a process group have mapped (the Python backend's, with the stubs)."""
    regions = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            maps = (stat.parent / "maps").read_text()
        except (OSError, ValueError, IndexError):
            continue
        regions |= {Path(line.split(maxsplit=5)[5]) for line in maps.splitlines()
                    if "/dev/shm/triton_python_backend" in line}
    return regions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, required=True, help="a repository written by streamer export --triton-repo")
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--metrics-port", type=int, default=8002)
    args = parser.parse_args()
    dist, reason = find_distribution()
    if dist is None:
        parser.error(reason)
    with LocalTriton(args.repo, dist, args.grpc_port, args.http_port, args.metrics_port) as server:
        server.start()
        print(f"Triton ready: gRPC {server.url}, HTTP :{server.http_port}, metrics :{server.metrics_port}; "
              f"log {server.log_path} (Ctrl-C to stop)", flush=True)
        try:
            server.process.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
