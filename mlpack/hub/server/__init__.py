"""The hub server: ``HubConfig`` -> ``Hub`` (database + blob storage) -> ``create_app`` (Starlette).

Never imports ``mlpack.serve`` or ``mlpack.runner``. Import the submodules you need:
``from mlpack.hub.server.app import create_app``; ``from mlpack.hub.server.repository import Hub``.
"""
