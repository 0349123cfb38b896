"""Producer and faces (async): one leading producer publishes boards and frames; every face follows.

``producer``: the refresh loop that leads (``lease``), records history, works out flags, packs a
board, publishes it on a ``bus`` and sends one frame per watched view; ``flag_tracker``: the
lifecycle flags of each refresh, from window stats read in a thread of their own. ``follower``: a face's side,
keeping the latest board, advertising the face's views and noticing when no producer publishes.
``child``: the embedded default's producer, a child process of its one Daphne (a socket between them).
"""
