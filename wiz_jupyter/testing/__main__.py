"""``python -m wiz_jupyter.testing``: the loopback server in a process of its own."""

from .openai_server import main

main()
