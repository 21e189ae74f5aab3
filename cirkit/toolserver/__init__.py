"""A store served over HTTP to RL frameworks: ``cirkit tools serve``.

``POST /retrieve`` speaks Search-R1's retrieval protocol (verl's ``SearchTool``, SkyRL, ROLL;
JSON or msgpack), ``POST /get_observation`` verl-tool's tool-server protocol with a ``cir``
tool (a code block run in the sandbox, its observation exactly as ``cirkit rollout`` makes
it), ``POST /web_search`` and ``/web_visit`` plain JSON, ``GET /health`` and ``GET /metrics``
(Prometheus text). Every tool call goes through a ``recorders.Recorder`` in its mode: replay
for training (read-only, any number of replicas on one store), auto or record to grow a store
(one store per replica, combined after with ``recorders.merge_stores``).
"""

from ._app import MAX_BODY_BYTES, create_app
from ._metrics import LATENCY_BUCKETS, Metrics
from ._server import BackgroundServer, bind, run_app, url_of
from ._service import ObserveRequest, ToolAnswer, ToolService, parse_observe, tool_args

__all__ = [
    "LATENCY_BUCKETS",
    "MAX_BODY_BYTES",
    "BackgroundServer",
    "Metrics",
    "ObserveRequest",
    "ToolAnswer",
    "ToolService",
    "bind",
    "create_app",
    "parse_observe",
    "run_app",
    "tool_args",
    "url_of",
]
