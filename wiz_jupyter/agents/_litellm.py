"""litellm, imported on the first model call and set up for a notebook.

``import litellm`` takes seconds, so ``import wiz_jupyter`` and ``%load_ext``
never pay it: :func:`load` runs on the first call (from a worker thread, so the
kernel's loop keeps running meanwhile) and is a dictionary look-up after that.

``%load_ext`` calls :func:`preload`, which starts that import in a daemon thread at
once: by the time a person has typed their first question, litellm is in, and a
first call made earlier waits for the same import (the lock) instead of starting
its own.
"""

from __future__ import annotations

import logging
import os
import threading
from types import ModuleType

from . import keys

#: Set before the import (only where the user has not chosen otherwise):
_ENV = {
    # the cost map bundled with litellm, not a download at import
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    # and the same for the other catalogs and tokenizers litellm fetches on its own
    "LITELLM_OFFLINE_MODE": "true",
    # no "file a bug" link on stderr when a scripted step raises
    "LITELLM_DISABLE_BUG_REPORT_LINK": "true",
}

_lock = threading.Lock()
_module: ModuleType | None = None
_preloading: threading.Thread | None = None
_log = logging.getLogger("wiz_jupyter.llm")


def loaded() -> ModuleType | None:
    """litellm if :func:`load` already ran, else None (cheap: no import)."""
    return _module


def load() -> ModuleType:
    """Import and configure litellm once; returns the module."""
    global _module
    if _module is not None:
        return _module
    with _lock:
        if _module is None:
            for name, value in _ENV.items():
                os.environ.setdefault(name, value)
            keys.load_keys_file()
            import litellm

            # litellm prints hints ("Provider List: ...") to stdout on some errors;
            # our errors say what to do in one line instead.
            litellm.suppress_debug_info = True
            from . import provider

            provider.register()
            _module = litellm
    return _module


def preload() -> None:
    """Import the openai SDK (the direct path of ``llm_openai.py``), then litellm, in a
    daemon thread now, so the first model call does not wait for either.

    Returns at once; calling it again, or after litellm is in, does nothing. A failure
    here is only logged: the first call imports again and reports the error itself.
    """
    global _preloading
    if _module is not None or _preloading is not None:
        return

    def run() -> None:
        from . import llm_openai

        try:
            # the direct OpenAI path first (half a second): a first question to an
            # OpenAI-compatible model waits for neither import
            llm_openai.load()
            load()
        except Exception as exc:  # the first real call raises it where the user sees it
            _log.debug("preloading litellm failed: %s", exc)

    _preloading = threading.Thread(target=run, name="wiz-preload-litellm", daemon=True)
    _preloading.start()
