"""The theory-claim registry of mdpsandbox: one module per topic (``validation/<topic>.py``).

Every module here whose name does not start with ``_`` is a claim module: it declares claims with
:func:`mdpsandbox.claims.claim`. Run them with ``mdpsandbox validate`` (``--list`` to see them).
"""
