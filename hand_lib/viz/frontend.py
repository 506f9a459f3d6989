"""Whether a widget function returns live widgets or a static figure.

Every widget in :mod:`hand_lib.viz` takes ``interactive: bool | None``. True or False is
obeyed. ``None`` (the default) means *live widgets only when a widget frontend can be
attached*, decided by :func:`resolve_interactive`:

1. ``HAND_LIB_INTERACTIVE=1`` / ``=0`` in the environment forces the answer (for frontends
   that do not go through a Jupyter server, e.g. VS Code, or to get static figures in
   JupyterLab);
2. otherwise the code must run in an IPython *kernel* and that kernel must have been started
   by a Jupyter server for a notebook or console session: the server puts
   ``JPY_SESSION_NAME`` into the environment of exactly those kernels (JupyterLab,
   Notebook 7, Voila). papermill / nbclient (``./run_all.sh``), ``python script.py`` and
   pytest start kernels or interpreters without it, so they get the static figures, which
   an executed notebook keeps as PNG images.

Why not ask the kernel whether a frontend answers comm messages: a kernel cannot tell (comm
messages are fire-and-forget), and under papermill the widgets would be created and shown as
"Loading widget..." text in ``results/``.
"""

from __future__ import annotations

import os

ENV_OVERRIDE = "HAND_LIB_INTERACTIVE"


def in_kernel() -> bool:
    """True inside an IPython kernel (a notebook or console), False in plain Python."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def resolve_interactive(interactive: bool | None = None) -> bool:
    """The widget mode to use: ``interactive`` when given, else the rule of this module's
    docstring (environment override, then "kernel started by a Jupyter server")."""
    if interactive is not None:
        return bool(interactive)
    forced = os.environ.get(ENV_OVERRIDE, "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True
    if forced in ("0", "false", "no", "off"):
        return False
    if forced:
        raise ValueError(f"{ENV_OVERRIDE} must be 1 or 0 (or unset), got {forced!r}")
    return in_kernel() and bool(os.environ.get("JPY_SESSION_NAME"))
