"""Theory claims as declared experiments, run by ``mdpsandbox validate``.

A claim module ``validation/<topic>.py`` declares claims with :func:`claim`; each experiment reports
through a :class:`Context` (``check`` named assertions, ``record`` key numbers, save ``figure`` s,
run ``sweep`` s). :func:`discover` imports the claim modules, :func:`run_claims` runs them (resuming
finished ones), :func:`write_report` writes ``report.md`` / ``report.html`` / ``results.json``.

Example::

    from mdpsandbox.claims import claim, Context

    @claim(id="my_claim", title="...", statement="... (equation; paper)", citation="...", topic="exact_dp",
           assertions=("bound_holds",), sizes={"quick": dict(n=5), "full": dict(n=100)})
    def my_claim(ctx: Context, n: int) -> None:
        ctx.check("bound_holds", measured=0.3, threshold=1.0, op="<=", note="max error / bound")
"""
from .registry import SIZES, Claim, ClaimDefinitionError, claim, default_claims_dir, discover, markdown_table, \
    registered, select
from .report import environment, format_table, summary_line, write_report
from .runner import BACKENDS, Context, check_out_dir, run_claims

__all__ = ["claim", "Context", "Claim", "ClaimDefinitionError", "SIZES", "BACKENDS", "discover", "registered",
           "select", "default_claims_dir", "markdown_table", "run_claims", "check_out_dir", "write_report",
           "environment", "format_table", "summary_line"]
