"""Normalise the stored teaching notebooks so the repository stays diff-friendly.

Outputs are kept (a student opening a notebook on the web sees its text and figures), but
everything that changes from run to run without changing the content is removed:

* execution counts (cells and ``execute_result`` outputs) are set to ``None``;
* cell metadata and output metadata are emptied, cell ids are renumbered ``cell-00``, ``cell-01``…;
* notebook metadata is reduced to a fixed ``kernelspec`` and ``language_info.name``;
* stream outputs are merged per stream name; only ``text/plain`` and ``image/png`` are kept in
  rich outputs (figures are stored once, as PNG, at the dpi the notebook sets).

Usage::

    python notebooks/normalize.py                   # normalise every notebooks/*.ipynb in place
    python notebooks/normalize.py --check           # exit 1 and list the files that are not normalised
    python notebooks/normalize.py --execute [FILE…] # execute (reading size) then normalise

``--execute`` runs each notebook top to bottom with nbclient in the notebook's folder; set
``MDPSANDBOX_FAST=1`` to execute the fast (test-suite) size instead. Files are written atomically.
"""
from __future__ import annotations

import argparse
import copy
import os
import pathlib
import sys
import tempfile

import nbformat

HERE = pathlib.Path(__file__).resolve().parent
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
KEEP_MIMES = ("image/png", "text/plain")


def _join(text) -> str:
    return "".join(text) if isinstance(text, list) else str(text)


def normalize(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A normalised copy of ``nb`` (see the module docstring); idempotent."""
    nb = copy.deepcopy(nb)
    nb.metadata = nbformat.from_dict({"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}})
    nb.nbformat, nb.nbformat_minor = 4, 5
    for i, cell in enumerate(nb.cells):
        cell.metadata = nbformat.from_dict({})
        cell.id = f"cell-{i:02d}"
        cell.source = _join(cell.source)
        if cell.cell_type != "code":
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
            continue
        cell.execution_count = None
        outputs, streams = [], {}
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                if out.name in streams:
                    streams[out.name].text += _join(out.text)
                    continue
                out = nbformat.v4.new_output("stream", name=out.name, text=_join(out.text))
                streams[out.name] = out
            elif out.output_type in ("execute_result", "display_data"):
                data = {k: (_join(v) if k == "text/plain" else v) for k, v in out.get("data", {}).items()
                        if k in KEEP_MIMES}
                if "image/png" in data:  # a figure: its repr ("<Figure size …>") adds nothing
                    data.pop("text/plain", None)
                if isinstance(data.get("image/png"), str):
                    data["image/png"] = data["image/png"].replace("\n", "")
                if not data:
                    continue
                out = nbformat.v4.new_output("display_data", data=data)
            elif out.output_type == "error":
                out = nbformat.v4.new_output("error", ename=out.ename, evalue=out.evalue,
                                             traceback=list(out.traceback))
            outputs.append(out)
        cell.outputs = outputs
    return nb


def is_normalized(path) -> bool:
    nb = nbformat.read(str(path), as_version=4)
    return nbformat.writes(normalize(nb)) == nbformat.writes(nb)


def write_atomic(nb: nbformat.NotebookNode, path) -> None:
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            nbformat.write(nb, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def execute(nb: nbformat.NotebookNode, cwd, timeout: int = 1200) -> nbformat.NotebookNode:
    import nbclient

    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help="notebooks (default: every notebooks/*.ipynb)")
    ap.add_argument("--check", action="store_true", help="report files that are not normalised; change nothing")
    ap.add_argument("--execute", action="store_true", help="execute each notebook before normalising it")
    args = ap.parse_args(argv)
    files = [pathlib.Path(f) for f in args.files] or sorted(HERE.glob("*.ipynb"))
    bad = []
    for path in files:
        if args.check:
            if not is_normalized(path):
                bad.append(path)
            continue
        nb = nbformat.read(str(path), as_version=4)
        if args.execute:
            print(f"executing {path.name} …", flush=True)
            execute(nb, path.resolve().parent)
        write_atomic(normalize(nb), path)
    for path in bad:
        print(f"not normalised: {path} (run python notebooks/normalize.py)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
