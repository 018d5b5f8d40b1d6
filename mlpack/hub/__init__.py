"""The team hub: a central repository of models and bundles (``mlpack hub``).

``mlpack.hub.server`` is the HTTP server (never imports serve or runner); ``mlpack.hub.client``
talks to it from a local store; ``mlpack.hub.ui`` renders the web pages the server mounts.
"""
