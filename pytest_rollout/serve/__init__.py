"""``rollout serve``: the gates behind HTTP, for Argo Rollouts, Flagger and Alertmanager.

See docs/serve.md. ``cli`` parses the command line, ``app`` holds the Starlette routes,
``evaluate`` runs one gate run per phase at a time on the warm ``worker``, ``alerts`` turns
Alertmanager notifications into rollbacks, ``metrics`` is the /metrics registry.
"""
