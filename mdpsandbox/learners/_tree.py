"""Index arithmetic on the canonical node order (moved to :mod:`mdpsandbox.testing._tree`, which
needs no torch; re-exported here for the learners)."""
from ..testing._tree import *  # noqa: F401,F403
from ..testing._tree import child_nodes, level_start, node_levels, node_prefixes, prefix_string  # noqa: F401
