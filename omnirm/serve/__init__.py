"""``omnirm serve``: one scorer (a reward model or a generative judge) behind HTTP.

- :mod:`omnirm.serve.batcher`: requests coalesced into scorer calls (dynamic batching), a
  bounded queue, a worker thread so the event loop stays responsive, drained on shutdown;
- :mod:`omnirm.serve.protocols`: the request and response shapes of ``/score``, OpenRLHF's
  remote reward protocol (``/openrlhf``) and vLLM's ``/classify``, and their mapping to records;
- :mod:`omnirm.serve.metrics`: the Prometheus metrics of ``/metrics``;
- :mod:`omnirm.serve.app`: the FastAPI application (:func:`~omnirm.serve.app.create_app`) and
  :func:`~omnirm.serve.app.serve`, which opens the scorer and runs uvicorn until SIGTERM.

Nothing here is imported by ``import omnirm``: fastapi, uvicorn and prometheus_client are the
optional extra ``omnirm[serve]``.
"""
