"""The Serve application of an app config, for Ray's own tools.

    serve run serve_app:app                          # configs/app.yaml
    serve run serve_app:app config=examples/customer_support/app.yaml

``app`` is a Serve application builder: Serve calls it with the ``args`` of a Serve
config file (or ``key=value`` pairs of ``serve run``). ``config`` names the app file,
relative to the working directory; ``$RAY_AGENTS_CONFIG`` is the fallback. For
``serve deploy`` onto a cluster, ``ray-agents serve-config`` writes the config file
(it names the installed ``agents.deploy:app``, the same builder).
"""

from agents.deploy import app

__all__ = ["app"]
