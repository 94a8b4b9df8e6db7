"""The floor of the gateway benchmark: the bare Starlette handler with the same model.

What the least a Python HTTP server can do per prediction costs on this machine: read the
JSON body, build the NumPy row in the fitted column order, ``predict_proba``, answer JSON.
No validation, no routing, no recording, no metrics, no auth. Served by Uvicorn exactly as
``mlwarden serve`` is (one worker, uvloop + httptools when installed, no access log), so
``bench/bench_gateway.py`` can put the gateway's throughput, tail latency and memory against it
in the same run.

    python bench/gateway_floor.py PORT ARTIFACT.skops
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import skops.io
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

FEATURES = ["period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"]


def floor_app(artifact: bytes) -> Starlette:
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    model = skops.io.loads(artifact, trusted=skops.io.get_untrusted_types(data=artifact))
    classes = [str(c) for c in model.classes_]

    async def predict(request: Request) -> JSONResponse:
        row = json.loads(await request.body())["instances"]
        x = np.array([[row[name] for name in FEATURES]], dtype=float)
        proba = model.predict_proba(x)[0]
        best = int(proba.argmax())
        return JSONResponse(
            {
                "prediction": classes[best],
                "probabilities": {c: float(p) for c, p in zip(classes, proba, strict=True)},
            }
        )

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/v1/models/elec/predict", predict, methods=["POST"]),
            Route("/health", health),
        ]
    )


if __name__ == "__main__":
    port, path = int(sys.argv[1]), Path(sys.argv[2])
    uvicorn.run(
        floor_app(path.read_bytes()),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )
