"""A model served by Triton Inference Server, over gRPC: ``triton://HOST[:PORT]/NAME[/VERSION]``.

The repository is the one ``python -m wsol_edge.export triton`` writes: its config carries the model's
metadata (parameter ``wsol_edge_metadata``), so a client needs nothing but the address. Preprocessing
and the box step run here, as for a local model; Triton runs the network (and batches requests from
many clients). A batch larger than the model's ``max_batch_size`` is sent in parts.
"""
from __future__ import annotations

import json
import re

import numpy as np

from ..export_metadata import MetadataError, check_metadata
from .base import Backend, BackendError

DEFAULT_GRPC_PORT = 8001
METADATA_PARAMETER = "wsol_edge_metadata"  # as export/serving.py writes it


def parse_address(address: str) -> tuple[str, str, str]:
    """(host:port, model name, version or "") of triton://HOST[:PORT]/NAME[/VERSION]."""
    found = re.fullmatch(r"(?i:triton://)([^/:]+|\[[^\]]+\])(?::(\d+))?/([^/]+)(?:/(\d+))?/?", address)
    if not found:
        raise BackendError(f"{address}: a Triton model is triton://HOST[:PORT]/NAME[/VERSION] (gRPC, port "
                           f"{DEFAULT_GRPC_PORT} by default)")
    host, port, name, version = found.groups()
    return f"{host}:{port or DEFAULT_GRPC_PORT}", name, version or ""


def one_line(exc: Exception) -> str:
    """Triton's (or gRPC's) message, in one line."""
    text = exc.message() if hasattr(exc, "message") and callable(exc.message) else str(exc)
    return " ".join(str(text).split())[:300]


class TritonBackend(Backend):
    name = "triton"
    device = "server"

    def __init__(self, address: str, timeout_s: float = 30.0):
        super().__init__()
        self.url, self.model, self.version = parse_address(address)
        try:
            import tritonclient.grpc as grpcclient
            from tritonclient.utils import InferenceServerException
        except ImportError:
            raise BackendError(f"{address}: a Triton model needs tritonclient: pip install \"tritonclient[grpc]\" "
                               "(or pip install \"wsol_edge[triton]\")") from None
        self._grpc, self._error = grpcclient, InferenceServerException
        self.timeout_s = timeout_s
        self.client = grpcclient.InferenceServerClient(url=self.url)
        where = f"{self.model}{f' version {self.version}' if self.version else ''} at {self.url}"
        try:
            if not self.client.is_model_ready(self.model, self.version, client_timeout=timeout_s):
                raise BackendError(f"{address}: Triton at {self.url} has no ready model {self.model}"
                                   f"{f' version {self.version}' if self.version else ''} (see its log)")
            config = self.client.get_model_config(self.model, self.version, client_timeout=timeout_s).config
        except InferenceServerException as exc:
            self.client.close()
            raise BackendError(f"{address}: cannot reach {where} ({one_line(exc)})") from None
        except BackendError:
            self.client.close()
            raise
        try:
            if METADATA_PARAMETER not in config.parameters:
                raise MetadataError(f"{address}: its config carries no wsol_edge metadata (parameter "
                                    f"{METADATA_PARAMETER}); write the repository with python -m wsol_edge.export "
                                    "triton")
            self.meta = check_metadata(json.loads(config.parameters[METADATA_PARAMETER].string_value), address)
        except (json.JSONDecodeError, MetadataError) as exc:
            self.client.close()
            raise BackendError(str(exc) if isinstance(exc, MetadataError) else
                               f"{address}: parameter {METADATA_PARAMETER} is not JSON ({exc})") from None
        self.outputs = [o.name for o in config.output]
        for required in ("logits", "cams", "class_ids"):
            if required not in self.outputs:
                self.client.close()
                raise BackendError(f"{address}: output {required!r} missing (outputs: {', '.join(self.outputs)})")
        self.max_batch = int(config.max_batch_size) or 1
        self.precision = str(self.meta.get("precision", "fp32"))

    def infer(self, images: np.ndarray) -> dict[str, np.ndarray]:
        images = self.check_batch(images)
        parts = [self._infer_part(images[i:i + self.max_batch]) for i in range(0, len(images), self.max_batch)]
        return {name: np.concatenate([p[name] for p in parts]) for name in self.outputs}

    def _infer_part(self, images: np.ndarray) -> dict[str, np.ndarray]:
        grpc = self._grpc
        request = grpc.InferInput("images", list(images.shape), "FP32")
        request.set_data_from_numpy(images)
        try:
            result = self.client.infer(self.model, [request], model_version=self.version,
                                       outputs=[grpc.InferRequestedOutput(n) for n in self.outputs],
                                       client_timeout=self.timeout_s)
        except self._error as exc:  # the server gone mid-stream: the run ends in one line
            raise BackendError(f"Triton {self.model} at {self.url}: {one_line(exc)}") from None
        out = {}
        for name in self.outputs:
            value = result.as_numpy(name)
            if value is None:
                raise BackendError(f"Triton {self.model} at {self.url} returned no {name!r}")
            # one class per image, whether the config reshapes it to [batch] (export triton) or leaves [batch, 1]
            out[name] = value.reshape(len(images)) if name == "class_ids" else value
        return out

    def close(self) -> None:
        client, self.client = getattr(self, "client", None), None
        if client is not None:
            client.close()
